import 'dart:convert';
import 'dart:io';

import 'package:aws_lambda_dart_runtime/aws_lambda_dart_runtime.dart';

/// The hello lambda of the AWS blog post "Introducing a Dart runtime for AWS
/// Lambda" and of the package's README. Nothing in it is dartup-specific: it
/// runs on dartup because dartup serves the same
/// Runtime API as AWS Lambda.
void main() async {
  final Handler<AwsApiGatewayEvent> helloApiGateway = (context, event) async {
    final resp = {
      'message': 'Hello to ${context.requestId}',
      'host': '${event.headers?.host}',
      'userAgent': '${event.headers?.userAgent}',
    };

    final response = AwsApiGatewayResponse(
      body: json.encode(resp),
      isBase64Encoded: false,
      statusCode: HttpStatus.ok,
      headers: {
        'Content-Type': 'application/json',
      },
    );

    /// it returns an encoded response to the gateway
    return InvocationResult(context.requestId, response);
  };

  /// The Runtime picks the handler named by _HANDLER (`--handler main.hello`).
  Runtime()
    ..registerHandler<AwsApiGatewayEvent>('main.hello', helloApiGateway)
    ..invoke();
}
