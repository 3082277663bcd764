import 'dart:convert';
import 'dart:typed_data';

import 'context.dart';

/// The shape of the event an invocation carried.
enum EventKind {
  /// An API Gateway (REST API, payload v1) proxy event: a JSON object with
  /// a string `httpMethod`. dartup's HTTP gateway sends this shape by default.
  apiGateway,

  /// An Application Load Balancer event: like [apiGateway], with
  /// `requestContext.elb` set. Its response carries `statusDescription`.
  alb,

  /// Anything else (e.g. `nats req lambda.NAME 'data'`): the body is the
  /// event's bytes as they were sent, and the reply is the response's bytes.
  raw,
}

/// One invocation of a lambda, as an HTTP-like request.
///
/// For HTTP events ([EventKind.apiGateway], [EventKind.alb]) [method],
/// [path], [query], [headers] and [body] come from the event. For
/// [EventKind.raw] events [method] and [path] are empty, [query] and
/// [headers] are empty and [bodyBytes] is the whole event.
class Request {
  /// The HTTP method, upper case (`GET`, `POST`, …); empty for raw events.
  final String method;

  /// The request path (`/hello/world`); empty for raw events.
  final String path;

  /// Query parameters; a parameter given several times keeps its last value.
  final Map<String, String> query;

  /// Query parameters with all their values.
  final Map<String, List<String>> queryAll;

  /// Request headers with lower-case names; a header given several times has
  /// its values joined with `, `.
  final Map<String, String> headers;

  /// The body's bytes (base64-decoded when the event said
  /// `isBase64Encoded`).
  final Uint8List bodyBytes;

  /// The shape of the event.
  final EventKind kind;

  /// The event exactly as the Runtime API delivered it.
  final Uint8List event;

  /// The invocation's id, deadline and other Runtime API facts.
  final LambdaContext context;

  /// Creates a request; [runLambda] builds them with [Request.fromEvent].
  Request({
    required this.method,
    required this.path,
    required this.query,
    required this.queryAll,
    required this.headers,
    required this.bodyBytes,
    required this.kind,
    required this.event,
    required this.context,
  });

  /// Decodes an invocation [event]: an API Gateway v1 or ALB proxy event
  /// (a JSON object with a string `httpMethod`) becomes an HTTP request;
  /// anything else is a [EventKind.raw] request whose body is [event].
  /// A malformed base64 body is a [FormatException].
  factory Request.fromEvent(List<int> event, LambdaContext context) {
    final bytes = event is Uint8List ? event : Uint8List.fromList(event);
    final decoded = _decodeObject(bytes);
    if (decoded == null || decoded['httpMethod'] is! String) {
      return Request(
        method: '',
        path: '',
        query: const <String, String>{},
        queryAll: const <String, List<String>>{},
        headers: const <String, String>{},
        bodyBytes: bytes,
        kind: EventKind.raw,
        event: bytes,
        context: context,
      );
    }
    final rc = decoded['requestContext'];
    final isAlb = rc is Map && rc['elb'] != null;
    final headers = <String, String>{};
    final single = decoded['headers'];
    if (single is Map) {
      single.forEach((k, v) {
        if (v != null) headers['$k'.toLowerCase()] = '$v';
      });
    }
    final multi = decoded['multiValueHeaders'];
    if (multi is Map) {
      multi.forEach((k, v) {
        if (v is List && v.isNotEmpty) {
          headers['$k'.toLowerCase()] = v.map((e) => '$e').join(', ');
        }
      });
    }
    final queryAll = <String, List<String>>{};
    String q(Object? s) {
      final text = '$s';
      if (!isAlb) return text; // API Gateway decodes; ALB passes them raw.
      try {
        return Uri.decodeQueryComponent(text);
      } catch (_) {
        return text; // malformed %-escape or UTF-8: keep it as sent
      }
    }

    final qs = decoded['queryStringParameters'];
    if (qs is Map) {
      qs.forEach((k, v) {
        if (v != null) queryAll[q(k)] = <String>[q(v)];
      });
    }
    final mqs = decoded['multiValueQueryStringParameters'];
    if (mqs is Map) {
      mqs.forEach((k, v) {
        if (v is List && v.isNotEmpty) {
          queryAll[q(k)] = v.map(q).toList();
        }
      });
    }
    final query = <String, String>{
      for (final e in queryAll.entries) e.key: e.value.last,
    };
    final body = decoded['body'];
    Uint8List bodyBytes;
    if (body is String) {
      bodyBytes = decoded['isBase64Encoded'] == true
          ? base64.decode(body)
          : Uint8List.fromList(utf8.encode(body));
    } else {
      bodyBytes = Uint8List(0);
    }
    final path = decoded['path'];
    return Request(
      method: (decoded['httpMethod'] as String).toUpperCase(),
      path: path is String && path.isNotEmpty ? path : '/',
      query: query,
      queryAll: queryAll,
      headers: headers,
      bodyBytes: bodyBytes,
      kind: isAlb ? EventKind.alb : EventKind.apiGateway,
      event: bytes,
      context: context,
    );
  }

  /// Whether the invocation came from an HTTP event.
  bool get isHttp => kind != EventKind.raw;

  /// The body as text (UTF-8, malformed bytes replaced).
  String get body => utf8.decode(bodyBytes, allowMalformed: true);

  /// The body decoded as JSON; null for an empty body. A body that is not
  /// JSON is a [FormatException].
  Object? json() => bodyBytes.isEmpty ? null : jsonDecode(body);

  /// The value of header [name] (any case), or null.
  String? header(String name) => headers[name.toLowerCase()];

  /// [path] and [queryAll] as a relative URI.
  Uri get uri => Uri(
        path: path.isEmpty ? '/' : path,
        queryParameters: queryAll.isEmpty ? null : queryAll,
      );

  @override
  String toString() => isHttp
      ? 'Request($method $path, ${bodyBytes.length} bytes)'
      : 'Request(raw, ${bodyBytes.length} bytes)';
}

/// Returns [bytes] decoded as a JSON object, or null when they are not one.
Map<String, dynamic>? _decodeObject(Uint8List bytes) {
  var i = 0;
  while (i < bytes.length &&
      (bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0a || bytes[i] == 0x0d)) {
    i++;
  }
  if (i == bytes.length || bytes[i] != 0x7b /* { */) return null;
  try {
    final v = jsonDecode(utf8.decode(bytes));
    return v is Map<String, dynamic> ? v : null;
  } on FormatException {
    return null;
  }
}
