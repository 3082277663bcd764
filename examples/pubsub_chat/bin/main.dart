import 'dart:async';
import 'dart:convert';
import 'dart:io';

import 'package:dartup/dartup.dart';

/// A chat between the instances of one app. `POST /say` on any instance
/// publishes the body on the app event `chat`; every *other* instance
/// receives it (angel3 semantics: not the sender), prints it and keeps the
/// last 50 lines, shown by `GET /`.
Future<void> main() async {
  final up = await DartUp.connect();
  final me = up.instance;
  final port = int.parse(Platform.environment['PORT'] ?? '9000');
  final heard = <String>[];

  final chat = await up.subscribe('chat');
  chat.listen((value) {
    if (value is! Map) return;
    final line = '${value['from']}: ${value['text']}';
    print('instance ${me.instance} heard $line');
    heard.add(line);
    if (heard.length > 50) heard.removeAt(0);
  });

  // Tell the others we are here (nobody listening yet is not an error).
  await up.publish('chat', {'from': me.id, 'text': 'joined on port $port'});

  final server = await HttpServer.bind(InternetAddress.anyIPv4, port);
  print('pubsub_chat instance ${me.instance} of ${me.app} on node ${me.node}, port $port');

  ProcessSignal.sigterm.watch().listen((_) async {
    await up.publish('chat', {'from': me.id, 'text': 'leaving'});
    await up.close();
    await server.close(force: true);
    exit(0);
  });

  // Losing dartup's NATS ends the app; dartup restarts it.
  unawaited(up.done.catchError((Object e) {
    stderr.writeln('lost the connection to dartup: $e');
    exit(1);
  }));

  await for (final req in server) {
    final res = req.response..headers.contentType = ContentType.text;
    if (req.method == 'POST' && req.uri.path == '/say') {
      final text = (await utf8.decodeStream(req)).trim();
      await up.publish('chat', {'from': me.id, 'text': text});
      res.write('sent to the other instances: $text\n');
    } else {
      res.write('instance ${me.instance} heard:\n${heard.join('\n')}\n');
    }
    await res.close();
  }
}
