import 'dart:convert';
import 'dart:typed_data';

import 'request.dart';

/// What a lambda answers: a status code, headers and a body.
///
/// For HTTP events [runLambda] sends it as a proxy response
/// `{statusCode, headers, body, isBase64Encoded}` (plus `statusDescription`
/// for ALB events); for raw events it sends [bodyBytes] alone.
class Response {
  /// The HTTP status code, 200 unless given.
  final int statusCode;

  /// Response headers as given, plus `content-type` when none was given.
  final Map<String, String> headers;

  /// The body.
  final Uint8List bodyBytes;

  /// Whether the body is binary: it is then base64-encoded in the proxy
  /// response with `isBase64Encoded: true`.
  final bool isBinary;

  /// Creates a response from raw parts; prefer [Response.text],
  /// [Response.json] and [Response.bytes].
  Response(
    this.statusCode, {
    Map<String, String>? headers,
    List<int> body = const <int>[],
    this.isBinary = false,
  })  : headers = Map<String, String>.of(headers ?? const <String, String>{}),
        bodyBytes = body is Uint8List ? body : Uint8List.fromList(body) {
    if (statusCode < 100 || statusCode > 999) {
      throw ArgumentError.value(statusCode, 'statusCode', 'must be 100..999');
    }
  }

  /// A UTF-8 text response, `content-type: text/plain; charset=utf-8`
  /// unless [headers] say otherwise.
  factory Response.text(String text,
          {int statusCode = 200, Map<String, String>? headers}) =>
      Response(statusCode,
          headers: _withType(headers, 'text/plain; charset=utf-8'),
          body: utf8.encode(text));

  /// A JSON response: [value] encoded with `jsonEncode` (so a value that JSON
  /// cannot hold throws a [JsonUnsupportedObjectError]),
  /// `content-type: application/json`.
  factory Response.json(Object? value,
          {int statusCode = 200, Map<String, String>? headers}) =>
      Response(statusCode,
          headers: _withType(headers, 'application/json'),
          body: utf8.encode(jsonEncode(value)));

  /// A binary response, base64-encoded in the proxy response;
  /// `content-type: application/octet-stream` unless [contentType] or
  /// [headers] say otherwise.
  factory Response.bytes(List<int> bytes,
          {int statusCode = 200,
          Map<String, String>? headers,
          String contentType = 'application/octet-stream'}) =>
      Response(statusCode,
          headers: _withType(headers, contentType),
          body: bytes,
          isBinary: true);

  /// The body as text (UTF-8, malformed bytes replaced).
  String get body => utf8.decode(bodyBytes, allowMalformed: true);

  @override
  String toString() => 'Response($statusCode, ${bodyBytes.length} bytes)';
}

Map<String, String> _withType(Map<String, String>? headers, String type) {
  final out = <String, String>{...?headers};
  final hasType = out.keys.any((k) => k.toLowerCase() == 'content-type');
  if (!hasType) out['content-type'] = type;
  return out;
}

/// Encodes [response] as the result of an invocation whose event had
/// [kind]: the proxy response JSON for HTTP events, the body for raw events.
/// Not exported: used by [runLambda] and documented in docs/protocol.md.
Uint8List encodeResponse(Response response, EventKind kind) {
  if (kind == EventKind.raw) return response.bodyBytes;
  final out = <String, Object?>{
    'statusCode': response.statusCode,
    if (kind == EventKind.alb)
      'statusDescription': _statusDescription(response.statusCode),
    'headers': response.headers,
    'body': response.isBinary
        ? base64.encode(response.bodyBytes)
        : utf8.decode(response.bodyBytes, allowMalformed: true),
    'isBase64Encoded': response.isBinary,
  };
  return Uint8List.fromList(utf8.encode(jsonEncode(out)));
}

String _statusDescription(int code) {
  const reasons = <int, String>{
    200: 'OK',
    201: 'Created',
    202: 'Accepted',
    204: 'No Content',
    301: 'Moved Permanently',
    302: 'Found',
    304: 'Not Modified',
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    409: 'Conflict',
    413: 'Payload Too Large',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
    504: 'Gateway Timeout',
  };
  final reason = reasons[code];
  return reason == null ? '$code' : '$code $reason';
}
