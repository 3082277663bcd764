import 'dart:async';
import 'dart:convert';
import 'dart:io';
import 'dart:typed_data';

import 'context.dart';
import 'native.dart';
import 'request.dart';
import 'response.dart';
import 'version.dart';

/// A lambda: answers one [Request] with a [Response].
typedef LambdaHandler = FutureOr<Response> Function(Request request);

/// Runs [handler] as a lambda: forever, it takes the next invocation, calls
/// [handler] and sends its response, or the error when [handler] throws
/// (the loop then goes on with the next invocation).
///
/// On dartup's native protocol (`dartup push --lambda --protocol nats`:
/// `DARTUP_LAMBDA_SUBJECT` is set) the invocations come over NATS and the
/// answers go straight to the callers ([runNativeLambda]); otherwise it is
/// an AWS Lambda custom runtime on the Runtime API at
/// `$AWS_LAMBDA_RUNTIME_API`.
///
/// ```dart
/// void main() => runLambda((req) async => Response.text('Hello, lambda world!'));
/// ```
///
/// [init], when given, runs once before the first invocation; if it throws,
/// the error is posted to `/runtime/init/error` and the returned future
/// completes with it (the process should then exit).
///
/// [environment] replaces `Platform.environment` (for tests).
///
/// On the Runtime API the returned future never completes normally (on the
/// native protocol it does when dartup stops the worker). It completes with a
/// [StateError] when `AWS_LAMBDA_RUNTIME_API` is not set, and with a
/// [RuntimeApiException] (or the socket's error) when the Runtime API answers
/// with an unexpected status or goes away, like aws-lambda-go, which exits in
/// that case; dartup then starts a new worker.
Future<void> runLambda(
  LambdaHandler handler, {
  FutureOr<void> Function()? init,
  Map<String, String>? environment,
}) async {
  final env = environment ?? Platform.environment;
  if ((env[nativeSubjectVar] ?? '').isNotEmpty) {
    return runNativeLambda(handler, init: init, environment: env);
  }
  final api = env['AWS_LAMBDA_RUNTIME_API'] ?? '';
  if (api.isEmpty) {
    throw StateError('runLambda: AWS_LAMBDA_RUNTIME_API is not set; '
        'run this program as a lambda: dartup push --lambda --name NAME ./program');
  }
  final client = RuntimeApiClient(api);
  final functionName = env['AWS_LAMBDA_FUNCTION_NAME'] ?? '';
  try {
    if (init != null) {
      try {
        await init();
      } catch (e, st) {
        await client.postInitError(e, st);
        rethrow;
      }
    }
    while (true) {
      final inv = await client.next(functionName: functionName);
      Uint8List? result;
      Object? error;
      StackTrace? stack;
      try {
        final request = Request.fromEvent(inv.event, inv.context);
        final response = await handler(request);
        result = encodeResponse(response, request.kind);
      } catch (e, st) {
        error = e;
        stack = st;
      }
      if (error != null) {
        await client.postError(inv.context.requestId, error, stack ?? StackTrace.empty);
      } else {
        await client.postResponse(inv.context.requestId, result ?? Uint8List(0));
      }
    }
  } finally {
    client.close();
  }
}

/// The Runtime API answered with a status runLambda does not expect.
class RuntimeApiException implements Exception {
  /// The call, e.g. `GET /2018-06-01/runtime/invocation/next`.
  final String call;

  /// The HTTP status code received.
  final int statusCode;

  /// The response body, as text.
  final String body;

  /// Creates the exception.
  RuntimeApiException(this.call, this.statusCode, this.body);

  @override
  String toString() => 'RuntimeApiException: $call answered $statusCode: $body';
}

/// One invocation fetched from the Runtime API.
class RuntimeInvocation {
  /// The event's bytes.
  final Uint8List event;

  /// The invocation's id, deadline, …
  final LambdaContext context;

  /// Creates an invocation.
  RuntimeInvocation(this.event, this.context);
}

/// A client of the AWS Lambda Runtime API (version 2018-06-01), the HTTP
/// calls of [runLambda]. They are listed in docs/protocol.md.
class RuntimeApiClient {
  final String _base;
  final HttpClient _http;

  /// Creates a client for `AWS_LAMBDA_RUNTIME_API` value [api]: `host:port`,
  /// possibly followed by a path prefix (dartup gives workers
  /// `127.0.0.1:PORT/w/ID`). URLs are built as `http://` + [api] +
  /// `/2018-06-01/...`.
  RuntimeApiClient(String api)
      : _base = 'http://${_trimApi(api)}/2018-06-01',
        _http = HttpClient() {
    _http.userAgent = userAgent;
    _http.autoUncompress = false; // no accept-encoding header
    _http.idleTimeout = const Duration(seconds: 60);
  }

  static String _trimApi(String api) {
    var a = api.trim();
    if (a.startsWith('http://')) a = a.substring(7);
    while (a.endsWith('/')) {
      a = a.substring(0, a.length - 1);
    }
    return a;
  }

  /// The URL of [path] (which starts with `/runtime/`).
  Uri url(String path) => Uri.parse('$_base$path');

  /// `GET /runtime/invocation/next`: waits for the next event.
  Future<RuntimeInvocation> next({String functionName = ''}) async {
    const path = '/runtime/invocation/next';
    final req = await _http.getUrl(url(path));
    req.contentLength = 0;
    final res = await req.close();
    final body = await _readAll(res);
    if (res.statusCode != HttpStatus.ok) {
      throw RuntimeApiException('GET /2018-06-01$path', res.statusCode,
          utf8.decode(body, allowMalformed: true));
    }
    String? h(String name) {
      final values = res.headers[name];
      return values == null || values.isEmpty ? null : values.first;
    }

    final id = h('lambda-runtime-aws-request-id') ?? '';
    if (id.isEmpty) {
      throw RuntimeApiException('GET /2018-06-01$path', res.statusCode,
          'no Lambda-Runtime-Aws-Request-Id header');
    }
    final ms = int.tryParse(h('lambda-runtime-deadline-ms')?.trim() ?? '');
    final deadline = ms == null
        ? DateTime.now().add(const Duration(minutes: 15))
        : DateTime.fromMillisecondsSinceEpoch(ms);
    return RuntimeInvocation(
      body,
      LambdaContext(
        requestId: id,
        deadline: deadline,
        invokedFunctionArn: h('lambda-runtime-invoked-function-arn') ?? '',
        traceId: h('lambda-runtime-trace-id') ?? '',
        clientContext: h('lambda-runtime-client-context'),
        cognitoIdentity: h('lambda-runtime-cognito-identity'),
        functionName: functionName,
      ),
    );
  }

  /// `POST /runtime/invocation/ID/response` with [result] as the body.
  Future<void> postResponse(String requestId, List<int> result) => _post(
      '/runtime/invocation/${Uri.encodeComponent(requestId)}/response',
      result, const <String, String>{});

  /// `POST /runtime/invocation/ID/error` with
  /// `{"errorMessage","errorType","stackTrace"}`.
  Future<void> postError(String requestId, Object error, StackTrace stack) {
    final type = errorTypeOf(error);
    return _post('/runtime/invocation/${Uri.encodeComponent(requestId)}/error',
        errorBody(error, stack), <String, String>{
      'lambda-runtime-function-error-type': type,
    });
  }

  /// `POST /runtime/init/error` with the same body as [postError].
  Future<void> postInitError(Object error, StackTrace stack) =>
      _post('/runtime/init/error', errorBody(error, stack), <String, String>{
        'lambda-runtime-function-error-type': errorTypeOf(error),
      });

  Future<void> _post(
      String path, List<int> body, Map<String, String> headers) async {
    final req = await _http.postUrl(url(path));
    req.headers.set('content-type', 'application/json');
    for (final e in headers.entries) {
      req.headers.set(e.key, e.value);
    }
    req.contentLength = body.length;
    req.add(body);
    final res = await req.close();
    final answer = await _readAll(res);
    if (res.statusCode < 200 || res.statusCode > 299) {
      throw RuntimeApiException('POST /2018-06-01$path', res.statusCode,
          utf8.decode(answer, allowMalformed: true));
    }
  }

  /// Closes the HTTP client.
  void close() => _http.close(force: true);
}

/// The `errorType` reported for [error]: its runtime type's name.
String errorTypeOf(Object error) => error.runtimeType.toString();

/// The JSON error document the Runtime API takes:
/// `{"errorMessage":…,"errorType":…,"stackTrace":[…]}`.
Uint8List errorBody(Object error, StackTrace stack) {
  final lines = stack
      .toString()
      .split('\n')
      .where((l) => l.trim().isNotEmpty)
      .toList();
  final doc = <String, Object>{
    'errorMessage': error.toString(),
    'errorType': errorTypeOf(error),
    'stackTrace': lines,
  };
  return Uint8List.fromList(utf8.encode(jsonEncode(doc)));
}

Future<Uint8List> _readAll(Stream<List<int>> stream) async {
  final chunks = <List<int>>[];
  var length = 0;
  await for (final chunk in stream) {
    chunks.add(chunk);
    length += chunk.length;
  }
  final out = Uint8List(length);
  var offset = 0;
  for (final c in chunks) {
    out.setRange(offset, offset + c.length, c);
    offset += c.length;
  }
  return out;
}
