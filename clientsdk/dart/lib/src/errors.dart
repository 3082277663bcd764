import 'dart:convert';

/// An error answered by dartup or by a function it runs, or a failure of the
/// connection to dartup.
///
/// [code] follows HTTP's meaning, as in the Go SDK's `clientsdk.Error`:
/// 4xx is the caller's mistake, 5xx the server's or the function's
/// (500 the function threw, 503 nobody serves the subject, 504 timeout).
class DartUpError implements Exception {
  /// The HTTP-like status code, e.g. 404, 429, 500, 503 or 504.
  final int code;

  /// A short machine-readable kind, e.g. `NotFound`, `NoResponders`,
  /// `Timeout` or the function's own `errorType`.
  final String errorType;

  /// What went wrong, in words.
  final String errorMessage;

  /// Creates an error with [code], [errorType] and [errorMessage].
  const DartUpError(this.code, this.errorType, this.errorMessage);

  /// Decodes the error carried by a reply's service-error headers:
  /// `Nats-Service-Error-Code` ([codeHeader]), `Nats-Service-Error`
  /// ([description]) and a JSON [body] `{"code","errorType","errorMessage"}`.
  /// Fields missing from the body fall back to the headers.
  factory DartUpError.fromReply(
      String codeHeader, String? description, List<int> body) {
    var code = int.tryParse(codeHeader.trim()) ?? 500;
    var type = '';
    var message = description ?? '';
    if (body.isNotEmpty) {
      try {
        final decoded = jsonDecode(utf8.decode(body, allowMalformed: true));
        if (decoded is Map) {
          final c = decoded['code'];
          if (c is int) code = c;
          final t = decoded['errorType'];
          if (t is String) type = t;
          final m = decoded['errorMessage'];
          if (m is String && m.isNotEmpty) message = m;
        }
      } on FormatException {
        // Not JSON: keep what the headers said.
      }
    }
    if (message.isEmpty) message = 'error $code';
    return DartUpError(code, type, message);
  }

  @override
  String toString() => errorType.isEmpty
      ? 'DartUpError: $errorMessage ($code)'
      : 'DartUpError: $errorMessage ($code $errorType)';
}
