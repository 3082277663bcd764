/// What dartup says about one invocation: read from the headers of
/// `GET /2018-06-01/runtime/invocation/next` (Runtime API), or from the
/// event's headers (native protocol).
class LambdaContext {
  /// `Lambda-Runtime-Aws-Request-Id`: the invocation's id.
  final String requestId;

  /// `Lambda-Runtime-Deadline-Ms` (integer milliseconds since the epoch):
  /// when the caller stops waiting.
  final DateTime deadline;

  /// `Lambda-Runtime-Invoked-Function-Arn`, empty when not sent.
  final String invokedFunctionArn;

  /// `Lambda-Runtime-Trace-Id` (X-Ray form), empty when not sent; on the
  /// native protocol, made from [traceparent].
  final String traceId;

  /// The invocation's W3C `traceparent` on the native protocol (make your
  /// spans its children); empty on the Runtime API.
  final String traceparent;

  /// `Lambda-Runtime-Client-Context`, or null when not sent.
  final String? clientContext;

  /// `Lambda-Runtime-Cognito-Identity`, or null when not sent.
  final String? cognitoIdentity;

  /// `AWS_LAMBDA_FUNCTION_NAME` from the environment, empty when not set.
  final String functionName;

  /// Creates a context; [runLambda] builds one per invocation.
  LambdaContext({
    required this.requestId,
    required this.deadline,
    this.invokedFunctionArn = '',
    this.traceId = '',
    this.traceparent = '',
    this.clientContext,
    this.cognitoIdentity,
    this.functionName = '',
  });

  /// The time left before [deadline]; negative once it has passed.
  Duration get remaining => deadline.difference(DateTime.now());

  @override
  String toString() =>
      'LambdaContext($requestId, deadline: ${deadline.toUtc().toIso8601String()})';
}
