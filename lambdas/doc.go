// Package lambdas is dartup's invocation engine. A Manager hosts the lambdas
// deployed on one runner node: for each it subscribes "lambda.NAME" in the
// queue group clientsdk.LambdaQueueGroup, starts worker processes on demand
// (cold start with buffering: a request waits until a worker asks for work),
// keeps them warm for the spec's KeepWarm idle time, bounds them by MaxWorkers
// and the waiting requests by Queue (beyond that: 429), enforces Timeout (the
// worker is killed, AWS semantics: 504), and maps every failure to a
// service-error reply (Nats-Service-Error, Nats-Service-Error-Code, JSON body
// {errorType, errorMessage}) so that a caller never hangs. A request carrying
// a valid clientsdk.HeaderRequestID (Dartup-Request-Id) runs with that id
// (Lambda-Runtime-Aws-Request-Id): an async event keeps its id on every
// attempt; otherwise each invocation gets a new UUID.
//
// Workers speak one of three protocols:
//
//   - runtime-api: the AWS Lambda Runtime API. The Manager serves it on one
//     loopback HTTP listener; each worker gets AWS_LAMBDA_RUNTIME_API set to
//     "127.0.0.1:PORT/w/WORKERID", so unchanged AWS custom-runtime bootstraps
//     (aws-lambda-go, the Dart aws_lambda_dart_runtime) run one invocation at
//     a time per process.
//   - stdio: one process per request (fork per request); the event on stdin,
//     the result from stdout, an exit code other than 0 is a function error
//     with stderr's tail as its message.
//   - nats (native): the Runtime API's pool, but the event is a message to
//     the worker's private subject and the worker answers the caller itself,
//     then sends a done notice to the Manager's control inbox (native.go;
//     clientsdk/app.ServeLambda, the Dart runLambda).
//
// Error codes on the wire: 500 function error (with the function's
// errorType), 502 worker died mid-invocation or could not start, 503 the
// lambda is being removed, 504 timeout, 413 response over 6 MiB, 429 queue
// full.
package lambdas
