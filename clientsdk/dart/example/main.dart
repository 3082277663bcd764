// A lambda: push it with
//   dart compile exe example/main.dart -o hello
//   dartup push --lambda --name hello ./hello
// and call it with `curl localhost:2374/hello` or `nats req lambda.hello ''`.
import 'package:dartup/dartup.dart';

void main() => runLambda((req) async {
      if (req.isHttp && req.query.containsKey('name')) {
        return Response.json({'hello': req.query['name'], 'path': req.path});
      }
      return Response.text('Hello, lambda world!');
    });
