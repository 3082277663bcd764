import 'package:dartup/dartup.dart';

/// dart_up's hello lambda: `runLambda` fetches each invocation from the
/// AWS Lambda Runtime API that dartup gives the worker.
void main() => runLambda((req) async => Response.text('Hello, lambda world!'));
