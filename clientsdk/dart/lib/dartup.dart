/// Run Dart programs on dartup.
///
/// * Lambdas: [runLambda] runs a handler on the AWS Lambda Runtime API that
///   dartup (and AWS Lambda) give every lambda worker, or on dartup's native
///   NATS protocol when the worker was pushed with `--protocol nats`:
///
///   ```dart
///   import 'package:dartup/dartup.dart';
///
///   void main() => runLambda((req) async => Response.text('Hello, lambda world!'));
///   ```
///
/// * Daemons: [DartUp.connect] joins dartup's NATS for angel3-style pub/sub
///   between the app's instances ([DartUp.publish], [DartUp.subscribe]) and
///   requests to lambdas ([DartUp.request]).
///
/// Only dart:io and the core libraries are used. The HTTP calls and NATS
/// protocol lines this package sends are written down in the dartup
/// repository's docs/protocol.md.
library dartup;

export 'src/client.dart' show DartUp, InstanceInfo, Subscription;
export 'src/context.dart' show LambdaContext;
export 'src/errors.dart' show DartUpError;
export 'src/lambda.dart' show LambdaHandler, RuntimeApiException, runLambda;
export 'src/request.dart' show EventKind, Request;
export 'src/response.dart' show Response;
export 'src/version.dart' show packageVersion;
