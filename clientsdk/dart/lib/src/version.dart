/// The version of the dartup Dart package.
const String packageVersion = '0.1.0';

/// The `user-agent` of runLambda's HTTP calls and the `name` prefix in
/// CONNECT: `dartup-dart/VERSION`.
const String userAgent = 'dartup-dart/$packageVersion';
