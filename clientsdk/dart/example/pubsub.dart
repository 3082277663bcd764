// Instances of one app greeting each other: push it with
//   dart compile exe example/pubsub.dart -o greeter
//   dartup push -j 3 --name greeter ./greeter
// Every instance prints the greetings of the two others, never its own.
import 'dart:async';

import 'package:dartup/dartup.dart';

Future<void> main() async {
  final up = await DartUp.connect();
  final greetings = await up.subscribe('greeting');
  greetings.listen((value) => print('instance ${up.instance.instance} got $value'));
  Timer.periodic(const Duration(seconds: 5), (_) {
    up.publish('greeting', {'from': up.instance.id, 'at': DateTime.now().toIso8601String()});
  });
  await up.done; // ends with an error if the connection is lost: dartup restarts us
}
