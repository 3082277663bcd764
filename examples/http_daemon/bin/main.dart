import 'dart:async';
import 'dart:io';

/// A plain dart:io HTTP server, like dart_up's and angel3's daemons: no
/// dartup package needed. dartup gives each instance its own PORT
/// (`--port 8080` with `-j 4`: 8080, 8081, 8082, 8083) and DARTUP_INSTANCE.
Future<void> main() async {
  final port = int.parse(Platform.environment['PORT'] ?? '8080');
  final instance = Platform.environment['DARTUP_INSTANCE'] ?? '-';
  final server = await HttpServer.bind(InternetAddress.anyIPv4, port);
  print('http_daemon instance $instance (pid $pid) listening on :$port');

  // dartup stops an instance with SIGTERM, then SIGKILL after the grace.
  ProcessSignal.sigterm.watch().listen((_) async {
    print('instance $instance: SIGTERM, closing');
    await server.close();
    exit(0);
  });

  await for (final request in server) {
    if (request.uri.path == '/crash') {
      // Like angel3's /crash: the instance dies, dartup restarts it.
      request.response.write('crashing instance $instance\n');
      await request.response.close();
      Timer(const Duration(milliseconds: 100), () => exit(3));
      continue;
    }
    request.response
      ..headers.contentType = ContentType.text
      ..write('Hello from dartup instance $instance (pid $pid, port $port)\n');
    await request.response.close();
  }
}
