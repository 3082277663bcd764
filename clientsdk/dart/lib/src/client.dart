import 'dart:async';
import 'dart:convert';
import 'dart:io';
import 'dart:typed_data';

import 'errors.dart';
import 'nats.dart';
import 'version.dart';

/// Who this process is on dartup, from the environment the runner gives
/// every worker.
class InstanceInfo {
  /// `DARTUP_APP`: the app's name; empty when not run by dartup.
  final String app;

  /// `DARTUP_INSTANCE`: the instance number (`0`, `1`, …), stable across
  /// restarts; empty when not run by dartup.
  final String instance;

  /// `DARTUP_NODE`: the runner node's id; empty when not run by dartup.
  final String node;

  /// The sender id put in the `Dartup-Sender` header of [DartUp.publish]:
  /// `APP.INSTANCE` (e.g. `chat.0`), or `APP.local-RANDOM` when
  /// `DARTUP_INSTANCE` is not set.
  final String id;

  /// Creates instance info.
  const InstanceInfo(
      {required this.app,
      required this.instance,
      required this.node,
      required this.id});

  /// Reads `DARTUP_APP`, `DARTUP_INSTANCE` and `DARTUP_NODE` from [env].
  factory InstanceInfo.fromEnvironment(Map<String, String> env) {
    final app = env['DARTUP_APP'] ?? '';
    final instance = env['DARTUP_INSTANCE'] ?? '';
    final node = env['DARTUP_NODE'] ?? '';
    final who = instance.isEmpty ? 'local-${randomToken(10)}' : instance;
    return InstanceInfo(app: app, instance: instance, node: node, id: '$app.$who');
  }

  /// The instance number, or null when `DARTUP_INSTANCE` is not a number.
  int? get index => int.tryParse(instance);

  @override
  String toString() => 'InstanceInfo(app: $app, instance: $instance, node: $node)';
}

/// A subscription to an app event: a single-subscription stream of the
/// decoded JSON values published by the app's other instances.
class Subscription extends StreamView<Object?> {
  /// The event name given to [DartUp.subscribe].
  final String event;

  /// The NATS subject: `dartup.app.APP.EVENT`.
  final String subject;

  final void Function() _stop;

  Subscription._(Stream<Object?> stream, this.event, this.subject, this._stop)
      : super(stream);

  /// Stops receiving: sends `UNSUB` and closes the stream. Cancelling the
  /// stream's listener does the same.
  Future<void> unsubscribe() async => _stop();
}

/// A connection of an app running on dartup to dartup's NATS: angel3-style
/// pub/sub between the app's instances, and requests to lambdas.
///
/// ```dart
/// final up = await DartUp.connect();
/// final greetings = await up.subscribe('greeting');
/// greetings.listen((value) => print('another instance says $value'));
/// await up.publish('greeting', {'from': up.instance.id});
/// ```
class DartUp {
  /// The header naming the publishing instance: `Dartup-Sender: APP.INSTANCE`.
  static const String senderHeader = 'Dartup-Sender';

  /// The prefix of app event subjects: `dartup.app.APP.EVENT`.
  static const String eventPrefix = 'dartup.app';

  /// Who this process is.
  final InstanceInfo instance;

  final NatsConnection _nc;
  final String _inboxPrefix;
  int? _inboxSid;
  int _nextRequest = 0;
  final Map<String, Completer<NatsMessage>> _requests =
      <String, Completer<NatsMessage>>{};

  DartUp._(this._nc, this.instance, String inboxBase)
      : _inboxPrefix = '$inboxBase.${randomToken()}';

  /// Connects to dartup's NATS with what the runner put in the environment
  /// ([environment] replaces `Platform.environment`, for tests):
  ///
  /// * `NATS_URL`: comma-separated `nats://host:port` URLs, default
  ///   `nats://127.0.0.1:4222`;
  /// * `NATS_TOKEN`, or `NATS_USER` and `NATS_PASSWORD`: credentials
  ///   (else those in the URL, else none);
  /// * `DARTUP_APP`, `DARTUP_INSTANCE`, `DARTUP_NODE`: see [InstanceInfo].
  ///
  /// The connection is made with `"echo":false`: it never receives what it
  /// publishes. Throws a [DartUpError]: 401 `AuthorizationViolation` for
  /// refused credentials, 503 `ConnectFailed` when no server answers within
  /// [timeout], 400 `Unsupported` for a `tls://` URL or a TLS-only server.
  static Future<DartUp> connect({
    Map<String, String>? environment,
    Duration timeout = const Duration(seconds: 5),
  }) async {
    final env = environment ?? Platform.environment;
    String? nonEmpty(String name) {
      final v = env[name];
      return v == null || v.isEmpty ? null : v;
    }

    final info = InstanceInfo.fromEnvironment(env);
    final servers = parseNatsUrl(nonEmpty('NATS_URL') ?? 'nats://127.0.0.1:4222');
    final nc = await NatsConnection.connect(
      servers,
      token: nonEmpty('NATS_TOKEN'),
      user: nonEmpty('NATS_USER'),
      password: nonEmpty('NATS_PASSWORD'),
      name: '$userAgent ${info.id}',
      timeout: timeout,
    );
    // Workers may only read their own app's inboxes: NATS_INBOX_PREFIX.
    return DartUp._(nc, info, nonEmpty('NATS_INBOX_PREFIX') ?? '_INBOX');
  }

  /// The subject of [event] for this app: `dartup.app.APP.EVENT`.
  ///
  /// Throws an [ArgumentError] when [event] is not a valid subject token
  /// (empty, or containing `.`, `*`, `>`, a space or a control character)
  /// and a [StateError] when `DARTUP_APP` is not set.
  String subjectOf(String event) {
    checkToken(event, 'event');
    if (instance.app.isEmpty) {
      throw StateError('DARTUP_APP is not set: app events need the app name '
          '(dartup sets it for every worker)');
    }
    return '$eventPrefix.${instance.app}.$event';
  }

  /// Publishes [value] as JSON on `dartup.app.APP.EVENT` with the header
  /// `Dartup-Sender: APP.INSTANCE`. Every other instance of the app that
  /// subscribed to [event] receives it once; this instance does not. An
  /// event nobody subscribed to is not an error.
  ///
  /// Throws an [ArgumentError] for an invalid [event], a
  /// [JsonUnsupportedObjectError] when [value] cannot be JSON, a
  /// [DartUpError] 413 `TooLarge` over the server's max_payload and 503
  /// `ConnectionClosed` when the connection is closed. The future completes
  /// once the message is queued; use [flush] to wait for the server.
  Future<void> publish(String event, Object? value) async {
    final subject = subjectOf(event);
    final data = utf8.encode(jsonEncode(value));
    _nc.publish(subject, data, headers: <String, String>{senderHeader: instance.id});
  }

  /// Subscribes to [event]: the returned stream gets the decoded JSON value
  /// of every message published on `dartup.app.APP.EVENT` by the app's other
  /// instances (messages whose `Dartup-Sender` is this instance's id are
  /// skipped; so are payloads that are not JSON, with a line on stderr).
  /// The future completes once the server has registered the subscription
  /// (after a PING/PONG), so a message published after that is received.
  ///
  /// When the connection is lost the stream ends with a [DartUpError] 503
  /// `ConnectionClosed`. Throws like [subjectOf], and a [DartUpError] when
  /// the connection is closed.
  Future<Subscription> subscribe(String event) async {
    final subject = subjectOf(event);
    final controller = StreamController<Object?>();
    var active = true;
    late final int sid;
    void stop() {
      if (!active) return;
      active = false;
      _nc.unsubscribe(sid);
      if (!controller.isClosed) unawaited(controller.close());
    }

    sid = _nc.subscribe(subject, (msg) {
      if (controller.isClosed) return;
      if (msg.header(senderHeader) == instance.id) return;
      Object? value;
      try {
        value = jsonDecode(utf8.decode(msg.data));
      } on FormatException catch (e) {
        stderr.writeln('dartup: skipped a message on ${msg.subject} that is not JSON: ${e.message}');
        return;
      }
      controller.add(value);
    }, onClose: (Object? error) {
      active = false;
      if (controller.isClosed) return;
      if (error != null) controller.addError(error);
      unawaited(controller.close());
    });
    controller.onCancel = stop;
    await _nc.flush();
    return Subscription._(controller.stream, event, subject, stop);
  }

  /// Invokes lambda [lambdaName] with [data] as its event: a NATS request on
  /// `lambda.NAME` with the reply subject `_INBOX.PREFIX.N`. Returns the
  /// reply's bytes (for an HTTP-style Response of a Dart lambda, its body).
  ///
  /// Throws an [ArgumentError] for an invalid name, and a [DartUpError]:
  /// the one the reply carries in its `Nats-Service-Error-Code` /
  /// `Nats-Service-Error` headers and JSON body (500 the function threw,
  /// 429 throttled, 504 timed out, …); 503 `NoResponders` when no runner
  /// serves `lambda.NAME`; 504 `Timeout` when no reply came within
  /// [timeout]; 503 `ConnectionClosed` when the connection is lost.
  Future<Uint8List> request(String lambdaName, List<int> data,
      {Duration timeout = const Duration(seconds: 60)}) async {
    checkToken(lambdaName, 'lambdaName');
    final subject = 'lambda.$lambdaName';
    _inboxSid ??= _nc.subscribe('$_inboxPrefix.*', (msg) {
      final token = msg.subject.substring(_inboxPrefix.length + 1);
      final c = _requests.remove(token);
      if (c != null && !c.isCompleted) c.complete(msg);
    }, onClose: (Object? error) {
      final failure = error ??
          const DartUpError(503, 'ConnectionClosed', 'the NATS connection is closed');
      final pending = _requests.values.toList();
      _requests.clear();
      for (final c in pending) {
        if (!c.isCompleted) c.completeError(failure);
      }
    });
    final token = '${++_nextRequest}';
    final completer = Completer<NatsMessage>();
    _requests[token] = completer;
    final NatsMessage reply;
    try {
      _nc.publish(subject, data, replyTo: '$_inboxPrefix.$token');
      reply = await completer.future.timeout(timeout,
          onTimeout: () => throw DartUpError(
              504, 'Timeout', 'no reply from $subject within $timeout'));
    } finally {
      _requests.remove(token);
    }
    final code = reply.header('Nats-Service-Error-Code');
    if (code != null) {
      throw DartUpError.fromReply(code, reply.header('Nats-Service-Error'), reply.data);
    }
    if (reply.status == 503 && reply.data.isEmpty) {
      throw DartUpError(503, 'NoResponders',
          'nothing serves $subject: no lambda named $lambdaName is pushed, or no runner hosts it');
    }
    if (reply.status != null && reply.status! >= 400) {
      throw DartUpError(reply.status!, 'NatsStatus',
          'request on $subject failed: ${reply.status} ${reply.statusDescription}');
    }
    return reply.data;
  }

  /// Waits until the server has processed everything sent so far (PING,
  /// PONG). Throws a [DartUpError] 504 `Timeout` or 503 `ConnectionClosed`.
  Future<void> flush({Duration timeout = const Duration(seconds: 10)}) =>
      _nc.flush(timeout: timeout);

  /// Flushes and closes the connection; subscriptions end.
  Future<void> close() => _nc.close();

  /// Completes when the connection closes: normally after [close], with a
  /// [DartUpError] 503 `ConnectionClosed` when it was lost (no reconnect:
  /// on dartup, let the process exit and the runner restarts it).
  Future<void> get done => _nc.done;
}

/// Throws an [ArgumentError] unless [name] can be one NATS subject token:
/// non-empty, without `.`, `*`, `>`, spaces or control characters.
void checkToken(String name, String what) {
  if (name.isEmpty) {
    throw ArgumentError.value(name, what, 'must not be empty');
  }
  for (final c in name.codeUnits) {
    if (c <= 0x20 || c == 0x7f || c == 0x2e || c == 0x2a || c == 0x3e) {
      throw ArgumentError.value(name, what,
          'must be one NATS subject token: no ".", "*", ">", spaces or control characters');
    }
  }
}
