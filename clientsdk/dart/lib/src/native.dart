import 'dart:async';
import 'dart:convert';
import 'dart:typed_data';

import 'context.dart';
import 'lambda.dart';
import 'nats.dart';
import 'request.dart';
import 'response.dart';
import 'version.dart';

/// The environment variable naming a native worker's private subject; its
/// presence makes [runLambda] speak the native protocol.
const String nativeSubjectVar = 'DARTUP_LAMBDA_SUBJECT';

/// The environment variable naming the subject a native worker sends its
/// notices to (ready, done, init-error).
const String nativeControlVar = 'DARTUP_LAMBDA_CONTROL';

/// The headers of the native protocol (docs/protocol.md section 7), in the
/// case dartup sends and expects them.
const String noticeHeader = 'Dartup-Notice';
const String requestIdHeader = 'Dartup-Request-Id';
const String deadlineHeader = 'Dartup-Deadline';
const String replyHeader = 'Dartup-Reply';
const String stopHeader = 'Dartup-Stop';
const String statusHeader = 'Dartup-Status';
const String errorTypeHeader = 'Dartup-Error-Type';

/// The largest result a function may return: 6 MiB plus the Runtime API's
/// 100 bytes of slack. A larger one is answered 413.
const int maxResponseBytes = 6 * 1024 * 1024 + 100;

/// Error messages in a service-error reply are cut to this many bytes.
const int maxErrorMessageBytes = 32 * 1024;

/// Runs [handler] on dartup's native lambda protocol (`dartup push --lambda
/// --protocol nats`), which [runLambda] uses when `DARTUP_LAMBDA_SUBJECT` is
/// set: it connects to NATS with the worker's own credentials, runs [init]
/// (an error is sent to dartup as an init-error notice and rethrown),
/// subscribes to the worker's subject, tells dartup it is ready and then,
/// one event at a time, calls [handler], tells dartup it is done and
/// answers the caller directly.
///
/// The future completes normally when dartup tells the worker to stop, and
/// with the connection's error when the connection is lost (the process
/// should then exit; dartup starts another worker).
Future<void> runNativeLambda(
  LambdaHandler handler, {
  FutureOr<void> Function()? init,
  required Map<String, String> environment,
}) async {
  String? nonEmpty(String name) {
    final v = environment[name];
    return v == null || v.isEmpty ? null : v;
  }

  final subject = nonEmpty(nativeSubjectVar) ?? '';
  final control = nonEmpty(nativeControlVar) ?? '';
  if (subject.isEmpty || control.isEmpty) {
    throw StateError('runLambda: $nativeSubjectVar and $nativeControlVar '
        'must both be set for the native protocol; dartup sets them for '
        '--protocol nats workers');
  }
  final functionName = nonEmpty('AWS_LAMBDA_FUNCTION_NAME') ?? '';
  final nc = await NatsConnection.connect(
    parseNatsUrl(nonEmpty('NATS_URL') ?? 'nats://127.0.0.1:4222'),
    token: nonEmpty('NATS_TOKEN'),
    user: nonEmpty('NATS_USER'),
    password: nonEmpty('NATS_PASSWORD'),
    name: '$userAgent $functionName',
  );
  try {
    if (init != null) {
      try {
        await init();
      } catch (e, st) {
        nc.publish(control, errorBody(e, st), headers: <String, String>{
          noticeHeader: 'init-error',
          errorTypeHeader: headerValue(errorTypeOf(e)),
        });
        await nc.flush();
        rethrow;
      }
    }
    final events = StreamController<NatsMessage>();
    nc.subscribe(subject, events.add, onClose: (Object? error) {
      if (error != null) events.addError(error);
      unawaited(events.close());
    });
    await nc.flush();
    nc.publish(control, const <int>[],
        headers: const <String, String>{noticeHeader: 'ready'});
    await for (final event in events.stream) {
      if (event.header(stopHeader) != null) return;
      await _serve(nc, control, event, handler, functionName);
    }
  } finally {
    await nc.close();
  }
}

/// Runs [handler] on [event], sends the done notice to [control], then
/// answers the caller on the event's `Dartup-Reply` subject.
Future<void> _serve(NatsConnection nc, String control, NatsMessage event,
    LambdaHandler handler, String functionName) async {
  final id = event.header(requestIdHeader) ?? '';
  final ms = int.tryParse(event.header(deadlineHeader)?.trim() ?? '');
  final traceparent = event.header('traceparent') ?? '';
  final context = LambdaContext(
    requestId: id,
    deadline: ms == null
        ? DateTime.now().add(const Duration(minutes: 15))
        : DateTime.fromMillisecondsSinceEpoch(ms),
    traceId: xrayOf(traceparent),
    traceparent: traceparent,
    clientContext: event.header('Lambda-Runtime-Client-Context'),
    cognitoIdentity: event.header('Lambda-Runtime-Cognito-Identity'),
    functionName: functionName,
  );
  Uint8List result = Uint8List(0);
  var status = 200;
  String? type;
  var message = '';
  try {
    final request = Request.fromEvent(event.data, context);
    final response = await handler(request);
    result = encodeResponse(response, request.kind);
    if (result.length > maxResponseBytes || result.length > nc.maxPayload) {
      status = 413;
      type = 'Function.ResponseSizeTooLarge';
      message = 'Response payload size (${result.length} bytes) exceeded '
          'maximum allowed payload size ($maxResponseBytes bytes).';
    }
  } catch (e) {
    status = 500;
    type = errorTypeOf(e);
    message = e.toString();
  }
  final done = <String, String>{
    noticeHeader: 'done',
    requestIdHeader: id,
    statusHeader: '$status',
  };
  if (type != null) done[errorTypeHeader] = headerValue(type);
  nc.publish(control, const <int>[], headers: done);
  final reply = event.header(replyHeader) ?? '';
  if (reply.isEmpty) return;
  if (status == 200) {
    nc.publish(reply, result);
    return;
  }
  final cut = cutMessage(message);
  nc.publish(reply, serviceErrorBody(status, type ?? '', cut),
      headers: <String, String>{
        'Nats-Service-Error': headerValue(cut),
        'Nats-Service-Error-Code': '$status',
      });
}

/// The JSON body of a service error, keys in the order dartup's Go side
/// writes them: `{"code","errorType","errorMessage"}`.
Uint8List serviceErrorBody(int code, String type, String message) {
  final doc = <String, Object>{
    'code': code,
    'errorType': type,
    'errorMessage': message,
  };
  return Uint8List.fromList(utf8.encode(jsonEncode(doc)));
}

/// [message] cut to [maxErrorMessageBytes] bytes of UTF-8 (on a character
/// boundary), saying how many bytes were cut, as dartup's Go side does.
String cutMessage(String message) {
  final bytes = utf8.encode(message);
  if (bytes.length <= maxErrorMessageBytes) return message;
  var cut = maxErrorMessageBytes;
  while (cut > 0 && (bytes[cut] & 0xC0) == 0x80) {
    cut--;
  }
  final kept = utf8.decode(bytes.sublist(0, cut));
  return '$kept… (${bytes.length - maxErrorMessageBytes} more bytes cut)';
}

/// [value] as a header value: CR and LF become spaces (as nats.go writes
/// them), and leading and trailing spaces and tabs are dropped.
String headerValue(String value) {
  final v = value.replaceAll('\r', ' ').replaceAll('\n', ' ');
  var start = 0, end = v.length;
  bool space(int c) => c == 0x20 || c == 0x09;
  while (start < end && space(v.codeUnitAt(start))) {
    start++;
  }
  while (end > start && space(v.codeUnitAt(end - 1))) {
    end--;
  }
  return v.substring(start, end);
}

/// The AWS X-Ray form of a W3C [traceparent]
/// (`Root=1-XXXXXXXX-XXXXXXXXXXXXXXXXXXXXXXXX;Parent=…;Sampled=0|1`), or ''
/// when it is not one.
String xrayOf(String traceparent) {
  final parts = traceparent.split('-');
  if (parts.length < 4 || parts[1].length != 32 || parts[2].length != 16 || parts[3].length != 2) {
    return '';
  }
  final flags = int.tryParse(parts[3], radix: 16) ?? 0;
  final trace = parts[1];
  return 'Root=1-${trace.substring(0, 8)}-${trace.substring(8)};'
      'Parent=${parts[2]};Sampled=${flags & 1}';
}
