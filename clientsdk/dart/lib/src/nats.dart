import 'dart:async';
import 'dart:convert';
import 'dart:io';
import 'dart:math';
import 'dart:typed_data';

import 'errors.dart';
import 'version.dart';

/// A message received on a subscription.
class NatsMessage {
  /// The subject it was published on.
  final String subject;

  /// The reply subject, or null.
  final String? replyTo;

  /// Headers (from HMSG), names as received; empty for MSG.
  final Map<String, List<String>> headers;

  /// The status code of the header block's first line (`NATS/1.0 503`), or
  /// null when there is none. 503 with no body means "no responders".
  final int? status;

  /// The text after the status code, or ''.
  final String statusDescription;

  /// The payload.
  final Uint8List data;

  /// Creates a message.
  NatsMessage(this.subject, this.replyTo, this.headers, this.status,
      this.statusDescription, this.data);

  /// The first value of header [name], compared without case, or null.
  String? header(String name) {
    final lower = name.toLowerCase();
    for (final e in headers.entries) {
      if (e.key.toLowerCase() == lower && e.value.isNotEmpty) {
        return e.value.first;
      }
    }
    return null;
  }
}

/// One server address from `NATS_URL`.
class NatsServer {
  /// Host name or address.
  final String host;

  /// TCP port, 4222 unless given.
  final int port;

  /// User from the URL's user info, or null.
  final String? user;

  /// Password from the URL's user info, or null.
  final String? password;

  /// Token from the URL's user info (`nats://TOKEN@host`), or null.
  final String? token;

  /// Creates a server address.
  NatsServer(this.host, this.port, {this.user, this.password, this.token});

  @override
  String toString() => '$host:$port';
}

/// Parses a `NATS_URL` value: one or more comma-separated URLs
/// `nats://[user:pass@|token@]host[:port]` (the scheme may be left out;
/// `tcp://` is taken as `nats://`). `tls://` and `ws://` are refused with a
/// [DartUpError] (code 400, `Unsupported`): this client speaks plain TCP.
List<NatsServer> parseNatsUrl(String value) {
  final out = <NatsServer>[];
  for (var part in value.split(',')) {
    part = part.trim();
    if (part.isEmpty) continue;
    if (!part.contains('://')) part = 'nats://$part';
    final uri = Uri.parse(part);
    if (uri.scheme != 'nats' && uri.scheme != 'tcp') {
      throw DartUpError(400, 'Unsupported',
          'NATS URL $part: scheme ${uri.scheme} is not supported by the dartup Dart client; use nats://');
    }
    String? user, password, token;
    if (uri.userInfo.isNotEmpty) {
      final i = uri.userInfo.indexOf(':');
      if (i < 0) {
        token = Uri.decodeComponent(uri.userInfo);
      } else {
        user = Uri.decodeComponent(uri.userInfo.substring(0, i));
        password = Uri.decodeComponent(uri.userInfo.substring(i + 1));
      }
    }
    out.add(NatsServer(uri.host.isEmpty ? '127.0.0.1' : uri.host,
        uri.hasPort ? uri.port : 4222,
        user: user, password: password, token: token));
  }
  if (out.isEmpty) {
    throw DartUpError(400, 'InvalidUrl', 'NATS URL "$value" names no server');
  }
  return out;
}

class _Sub {
  final void Function(NatsMessage) onMessage;
  final void Function(Object? error) onClose;
  _Sub(this.onMessage, this.onClose);
}

class _PendingMsg {
  final String subject;
  final int sid;
  final String? replyTo;
  final int headerLength;
  final int totalLength;
  _PendingMsg(this.subject, this.sid, this.replyTo, this.headerLength,
      this.totalLength);
}

final Uint8List _crlf = Uint8List.fromList(const [13, 10]);

/// A small NATS client over dart:io: the text protocol (INFO, CONNECT, PUB,
/// HPUB, SUB, UNSUB, MSG, HMSG, PING, PONG, +OK, -ERR) on one TCP
/// connection, without TLS and without reconnecting. The exact lines it
/// sends are in docs/protocol.md.
class NatsConnection {
  final Socket _socket;
  final NatsServer server;
  Map<String, dynamic> _info = <String, dynamic>{};
  final Map<int, _Sub> _subs = <int, _Sub>{};
  final List<Completer<void>> _pongs = <Completer<void>>[];
  final Completer<void> _done = Completer<void>();
  final Completer<void> _handshake = Completer<void>();
  final Completer<Map<String, dynamic>> _firstInfo =
      Completer<Map<String, dynamic>>();
  final List<List<int>> _outChunks = <List<int>>[];
  bool _flushScheduled = false;
  bool _closed = false;
  int _nextSid = 1;
  Uint8List _buf = Uint8List(0);
  int _pos = 0;
  _PendingMsg? _pending;
  late final StreamSubscription<Uint8List> _reader;

  NatsConnection._(this._socket, this.server) {
    _reader = _socket.listen(_onData,
        onError: (Object e) => _shutdown(
            DartUpError(503, 'ConnectionClosed', 'NATS connection to $server failed: $e')),
        onDone: () => _shutdown(_closed
            ? null
            : DartUpError(503, 'ConnectionClosed', 'NATS server $server closed the connection')),
        cancelOnError: true);
    // Errors of these futures reach whoever awaits them; unawaited ones must
    // not crash the isolate.
    _socket.done.ignore();
    _handshake.future.ignore();
    _firstInfo.future.ignore();
    _done.future.ignore();
  }

  /// Connects to the first of [servers] that answers, sends CONNECT (with
  /// `"echo":false`, so this connection never receives its own messages)
  /// and waits for the PONG that confirms it. Credentials: [token], else
  /// [user] and [password], else those of the server's URL.
  ///
  /// Throws a [DartUpError]: 401 `AuthorizationViolation` when the server
  /// refuses the credentials, 503 `ConnectFailed` when no server answers,
  /// 400 `Unsupported` when the server requires TLS.
  static Future<NatsConnection> connect(
    List<NatsServer> servers, {
    String? user,
    String? password,
    String? token,
    String name = userAgent,
    Duration timeout = const Duration(seconds: 5),
  }) async {
    Object? last;
    for (final s in servers) {
      Socket? socket;
      try {
        socket = await Socket.connect(s.host, s.port, timeout: timeout);
      } catch (e) {
        last = e;
      }
      if (socket == null) continue;
      socket.setOption(SocketOption.tcpNoDelay, true);
      final nc = NatsConnection._(socket, s);
      try {
        await nc
            ._start(
              user: token != null ? null : (user ?? s.user),
              password: token != null ? null : (user != null ? password : s.password),
              token: token ?? (user != null ? null : s.token),
              name: name,
            )
            .timeout(timeout);
        return nc;
      } on DartUpError catch (e) {
        nc._abort();
        if (e.code == 401 || e.code == 400) rethrow;
        last = e;
      } on TimeoutException {
        nc._abort();
        last = 'no INFO/PONG from $s within $timeout';
      }
    }
    throw DartUpError(503, 'ConnectFailed',
        'cannot connect to NATS at ${servers.join(',')}: $last');
  }

  Future<void> _start(
      {String? user, String? password, String? token, required String name}) async {
    final info = await _firstInfo.future;
    if (info['tls_required'] == true) {
      throw DartUpError(400, 'Unsupported',
          'NATS server $server requires TLS, which the dartup Dart client does not speak');
    }
    final connect = <String, Object>{
      'verbose': false,
      'pedantic': false,
      'tls_required': false,
      'name': name,
      'lang': 'dart',
      'version': packageVersion,
      'protocol': 1,
      'echo': false,
      'headers': true,
      'no_responders': true,
      if (user != null) 'user': user,
      if (password != null) 'pass': password,
      if (token != null) 'auth_token': token,
    };
    _writeString('CONNECT ${jsonEncode(connect)}\r\nPING\r\n');
    final pong = Completer<void>();
    _pongs.add(pong);
    await Future.any(<Future<void>>[pong.future, _handshake.future]);
    if (!_handshake.isCompleted) _handshake.complete();
  }

  /// The server's INFO (the latest one received).
  Map<String, dynamic> get info => _info;

  /// The server's `max_payload`, 1 MiB when it did not say.
  int get maxPayload {
    final m = _info['max_payload'];
    return m is int ? m : 1048576;
  }

  /// Whether [close] was called or the connection was lost.
  bool get isClosed => _closed;

  /// Completes when the connection is closed: normally after [close], with a
  /// [DartUpError] (503 `ConnectionClosed`) when it was lost.
  Future<void> get done => _done.future;

  /// Sends `SUB subject sid` (or `SUB subject queue sid`) and returns the
  /// sid, assigned 1, 2, 3, … in call order. [onMessage] gets each message;
  /// [onClose] is called once when the connection closes (with the error
  /// when it was lost) or [unsubscribe] is called (with null).
  int subscribe(String subject, void Function(NatsMessage) onMessage,
      {String? queue, void Function(Object? error)? onClose}) {
    _checkOpen();
    final sid = _nextSid++;
    _subs[sid] = _Sub(onMessage, onClose ?? (_) {});
    _writeString(queue == null
        ? 'SUB $subject $sid\r\n'
        : 'SUB $subject $queue $sid\r\n');
    return sid;
  }

  /// Sends `UNSUB sid` and forgets the subscription; a no-op when it is
  /// unknown or the connection is closed.
  void unsubscribe(int sid) {
    final sub = _subs.remove(sid);
    if (sub == null || _closed) return;
    _writeString('UNSUB $sid\r\n');
    sub.onClose(null);
  }

  /// Publishes [data] on [subject]: `PUB subject [reply] n` or, with
  /// [headers], `HPUB subject [reply] h n` with a `NATS/1.0` header block.
  /// Throws a [DartUpError] 413 `TooLarge` above the server's max_payload and
  /// 503 `ConnectionClosed` after the connection closed.
  void publish(String subject, List<int> data,
      {String? replyTo, Map<String, String>? headers}) {
    _checkOpen();
    final r = replyTo == null ? '' : ' $replyTo';
    if (headers == null || headers.isEmpty) {
      if (data.length > maxPayload) _tooLarge(subject, data.length);
      _writeString('PUB $subject$r ${data.length}\r\n');
    } else {
      final sb = StringBuffer('NATS/1.0\r\n');
      headers.forEach((k, v) => sb.write('$k: $v\r\n'));
      sb.write('\r\n');
      final hdr = utf8.encode(sb.toString());
      final total = hdr.length + data.length;
      if (total > maxPayload) _tooLarge(subject, total);
      _writeString('HPUB $subject$r ${hdr.length} $total\r\n');
      _write(hdr);
    }
    _write(data);
    _write(_crlf);
  }

  Never _tooLarge(String subject, int n) => throw DartUpError(413, 'TooLarge',
      'message of $n bytes on $subject is over the server\'s max_payload of $maxPayload bytes');

  /// Sends `PING` and waits for the server's `PONG`: everything written
  /// before has then been processed by the server. Throws a [DartUpError]
  /// 504 `Timeout` after [timeout].
  Future<void> flush({Duration timeout = const Duration(seconds: 10)}) {
    _checkOpen();
    final pong = Completer<void>();
    _pongs.add(pong);
    _writeString('PING\r\n');
    return pong.future.timeout(timeout,
        onTimeout: () => throw DartUpError(
            504, 'Timeout', 'no PONG from NATS server $server within $timeout'));
  }

  /// Flushes, then closes the connection; subscriptions end without error.
  Future<void> close() async {
    if (_closed) {
      try {
        await _done.future;
      } catch (_) {
        // Already lost; closing is done.
      }
      return;
    }
    try {
      await flush(timeout: const Duration(seconds: 2));
    } catch (_) {
      // Closing anyway.
    }
    _sendNow();
    _closed = true;
    try {
      await _socket.close();
    } catch (_) {
      // Already gone.
    }
    _shutdown(null);
  }

  void _abort() {
    _closed = true;
    _socket.destroy();
    _shutdown(null);
  }

  void _checkOpen() {
    if (_closed) {
      throw DartUpError(503, 'ConnectionClosed', 'the NATS connection to $server is closed');
    }
  }

  void _shutdown(Object? error) {
    _closed = true;
    if (_done.isCompleted) return;
    unawaited(_reader.cancel());
    _socket.destroy();
    final failure =
        error ?? DartUpError(503, 'ConnectionClosed', 'the NATS connection to $server is closed');
    for (final p in _pongs) {
      if (!p.isCompleted) p.completeError(failure);
    }
    _pongs.clear();
    if (!_handshake.isCompleted) _handshake.completeError(failure);
    if (!_firstInfo.isCompleted) _firstInfo.completeError(failure);
    final subs = _subs.values.toList();
    _subs.clear();
    for (final s in subs) {
      s.onClose(error);
    }
    if (error == null) {
      _done.complete();
    } else {
      _done.completeError(error);
    }
  }

  // ---- writing ----

  void _writeString(String s) => _write(utf8.encode(s));

  void _write(List<int> bytes) {
    _outChunks.add(bytes);
    if (!_flushScheduled) {
      _flushScheduled = true;
      scheduleMicrotask(_sendNow);
    }
  }

  void _sendNow() {
    _flushScheduled = false;
    if (_outChunks.isEmpty) return;
    var n = 0;
    for (final c in _outChunks) {
      n += c.length;
    }
    final out = Uint8List(n);
    var o = 0;
    for (final c in _outChunks) {
      out.setRange(o, o + c.length, c);
      o += c.length;
    }
    _outChunks.clear();
    if (_closed) return;
    try {
      _socket.add(out);
    } catch (e) {
      scheduleMicrotask(() => _shutdown(
          DartUpError(503, 'ConnectionClosed', 'writing to NATS server $server failed: $e')));
    }
  }

  // ---- reading ----

  void _onData(Uint8List chunk) {
    if (_pos >= _buf.length) {
      _buf = chunk;
    } else {
      final rest = _buf.length - _pos;
      final b = Uint8List(rest + chunk.length);
      b.setRange(0, rest, _buf, _pos);
      b.setRange(rest, b.length, chunk);
      _buf = b;
    }
    _pos = 0;
    try {
      _parse();
    } on Object catch (e) {
      _shutdown(DartUpError(502, 'ProtocolError', 'NATS protocol error from $server: $e'));
    }
  }

  void _parse() {
    while (!_done.isCompleted) {
      final p = _pending;
      if (p != null) {
        if (_buf.length - _pos < p.totalLength + 2) return;
        final start = _pos;
        _pos += p.totalLength + 2;
        _pending = null;
        _deliver(p, start);
        continue;
      }
      var nl = -1;
      for (var i = _pos; i + 1 < _buf.length; i++) {
        if (_buf[i] == 13 && _buf[i + 1] == 10) {
          nl = i;
          break;
        }
      }
      if (nl < 0) {
        if (_buf.length - _pos > 1 << 20) {
          throw const FormatException('control line longer than 1 MiB');
        }
        return;
      }
      final line = utf8.decode(Uint8List.sublistView(_buf, _pos, nl), allowMalformed: true);
      _pos = nl + 2;
      _handleLine(line);
    }
  }

  void _handleLine(String line) {
    final sp = line.indexOf(RegExp(r'[ \t]'));
    final op = (sp < 0 ? line : line.substring(0, sp)).toUpperCase();
    final rest = sp < 0 ? '' : line.substring(sp + 1).trim();
    switch (op) {
      case 'MSG':
        {
          final f = rest.split(RegExp(r'[ \t]+'));
          if (f.length != 3 && f.length != 4) {
            throw FormatException('bad MSG line: $line');
          }
          _pending = _PendingMsg(f[0], int.parse(f[1]),
              f.length == 4 ? f[2] : null, 0, int.parse(f.last));
        }
      case 'HMSG':
        {
          final f = rest.split(RegExp(r'[ \t]+'));
          if (f.length != 4 && f.length != 5) {
            throw FormatException('bad HMSG line: $line');
          }
          _pending = _PendingMsg(f[0], int.parse(f[1]),
              f.length == 5 ? f[2] : null, int.parse(f[f.length - 2]),
              int.parse(f.last));
        }
      case 'PING':
        _writeString('PONG\r\n');
      case 'PONG':
        if (_pongs.isNotEmpty) {
          final p = _pongs.removeAt(0);
          if (!p.isCompleted) p.complete();
        }
      case 'INFO':
        {
          final decoded = jsonDecode(rest);
          if (decoded is Map<String, dynamic>) {
            _info = decoded;
            if (!_firstInfo.isCompleted) _firstInfo.complete(decoded);
          }
        }
      case '+OK':
        break;
      case '-ERR':
        _onErr(rest);
      default:
        throw FormatException('unknown operation: $line');
    }
  }

  void _onErr(String text) {
    final message = text.replaceAll("'", '').trim();
    if (!_handshake.isCompleted) {
      final lower = message.toLowerCase();
      final auth = lower.contains('authorization') || lower.contains('authentication');
      _handshake.completeError(DartUpError(auth ? 401 : 502,
          auth ? 'AuthorizationViolation' : 'ConnectError',
          'NATS server $server refused the connection: $message'));
      return;
    }
    // After the handshake the server closes the connection on fatal
    // errors (onDone reports it); a permissions violation is not fatal.
    stderr.writeln('dartup: NATS server $server: -ERR $message');
  }

  void _deliver(_PendingMsg p, int start) {
    final sub = _subs[p.sid];
    if (sub == null) return; // unsubscribed meanwhile
    final headers = <String, List<String>>{};
    int? status;
    var description = '';
    if (p.headerLength > 0) {
      final text = utf8.decode(
          Uint8List.sublistView(_buf, start, start + p.headerLength),
          allowMalformed: true);
      final lines = text.split('\r\n');
      final first = lines.first.trim(); // NATS/1.0[ code[ description]]
      final parts = first.split(RegExp(r'[ \t]+'));
      if (parts.length > 1) {
        status = int.tryParse(parts[1]);
        if (parts.length > 2) description = parts.sublist(2).join(' ');
      }
      for (final l in lines.skip(1)) {
        if (l.isEmpty) continue;
        final i = l.indexOf(':');
        if (i <= 0) continue;
        final name = l.substring(0, i).trim();
        (headers[name] ??= <String>[]).add(l.substring(i + 1).trim());
      }
    }
    final data = Uint8List.fromList(Uint8List.sublistView(
        _buf, start + p.headerLength, start + p.totalLength));
    sub.onMessage(NatsMessage(p.subject, p.replyTo, headers, status, description, data));
  }
}

const String _alphabet =
    '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
final Random _random = Random.secure();

/// [n] random characters from [0-9A-Za-z] (a secure random source).
String randomToken([int n = 22]) =>
    String.fromCharCodes(List<int>.generate(n, (_) => _alphabet.codeUnitAt(_random.nextInt(62))));
