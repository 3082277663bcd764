package clientsdk

import (
	"strings"
)

// The native lambda protocol (ProtocolNATS, docs/lambdas.md "The native
// protocol"): a worker connects to NATS with a token of its own, subscribes
// to its private subject, and tells dartup it is ready on its control
// subject; dartup keeps the pool, queue, limits and timeouts as for the
// Runtime API, publishes each event to the worker's subject, and the worker
// answers the caller directly, then sends dartup a done notice.
const (
	// EnvLambdaSubject names the worker's private subject
	// (LambdaWorkerSubject): events and stop notices arrive there. Its
	// presence in the environment is how a program knows it is a native
	// worker.
	EnvLambdaSubject = "DARTUP_LAMBDA_SUBJECT"
	// EnvLambdaControl names the subject the worker sends its notices to
	// (ready, done, init-error): an inbox of dartup's holding a secret
	// only this worker knows, so that no other worker can speak for it.
	EnvLambdaControl = "DARTUP_LAMBDA_CONTROL"
	// EnvLambdaDirect, when set (to the queue group, LambdaQueueGroup),
	// offers direct mode: the worker takes requests itself, subscribing
	// LambdaSubject(app) in that group whenever it is free (drained while
	// a request outlives 1 ms), and tells dartup with NoticeTook. A
	// worker that takes the offer says so in its ready notice
	// (HeaderLambdaDirect); one that does not is handed events as without
	// it (docs/protocol.md §7).
	EnvLambdaDirect = "DARTUP_LAMBDA_DIRECT"
	// EnvLambdaTimeoutMS is the function's timeout in milliseconds: in
	// direct mode a worker's handler deadline is this long after it took
	// the request.
	EnvLambdaTimeoutMS = "DARTUP_LAMBDA_TIMEOUT_MS"
	// EnvLambdaDirectControl, with EnvLambdaDirect, is the control subject
	// a worker that takes the offer sends its notices to instead of
	// EnvLambdaControl's (the same secret, a shorter way).
	EnvLambdaDirectControl = "DARTUP_LAMBDA_DIRECT_CONTROL"
	// EnvLambdaReplyPrefixes lists, comma-separated, the server's extra
	// reply prefixes (ReplyPrefixes) a direct worker may answer besides
	// the inboxes; a request with any other reply subject is dropped.
	EnvLambdaReplyPrefixes = "DARTUP_LAMBDA_REPLY_PREFIXES"

	// NativeWorkerPrefix starts the private subjects of native workers:
	// "dartup.native.APP.WORKER".
	NativeWorkerPrefix = "dartup.native"

	// HeaderLambdaReply carries, on an event, the caller's reply subject
	// (an inbox, already checked by dartup): the worker publishes its
	// result or its service error there. Absent: nobody waits for the
	// answer (the result is dropped).
	HeaderLambdaReply = "Dartup-Reply"
	// HeaderClientContext and HeaderCognitoIdentity, when a caller sets
	// them on its request, reach the function as they came (on the Runtime
	// API as headers of the same names, on the native protocol as headers
	// of the event).
	HeaderClientContext   = "Lambda-Runtime-Client-Context"
	HeaderCognitoIdentity = "Lambda-Runtime-Cognito-Identity"
	// HeaderLambdaStop on a message to the worker's subject (value "1")
	// tells it to stop: ServeLambda returns. It comes just before SIGTERM.
	HeaderLambdaStop = "Dartup-Stop"
	// HeaderNotice names a notice to the control subject: NoticeReady,
	// NoticeDone or NoticeInitError.
	HeaderNotice = "Dartup-Notice"
	// HeaderLambdaStatus is the outcome in a done notice: "200" (the result
	// was sent), "500" (a function error was sent), "413" (the result was
	// over MaxLambdaResponseBytes and 413 was sent instead).
	HeaderLambdaStatus = "Dartup-Status"
	// HeaderLambdaDirect ("1") on a ready notice: the worker takes
	// requests itself (EnvLambdaDirect); dartup never hands it an event.
	// On an answer to a presence probe (LambdaHostedSubject): the node
	// hosts the lambda in direct mode, its fallback always subscribed.
	HeaderLambdaDirect = "Dartup-Direct"
	// HeaderLambdaElapsed, on a direct worker's done notice for a request
	// it sent no took notice for, is the time it ran, in microseconds.
	HeaderLambdaElapsed = "Dartup-Elapsed"
	// HeaderRequeued is set by dartup on a request it re-publishes from its
	// queue to a direct worker; the worker copies it into its took notice
	// so that dartup finds the waiting request (its arrival, deadline and
	// trace) again.
	HeaderRequeued = "Dartup-Requeued"
	// HeaderPassedOn counts how many times a runner without a leaf server
	// passed a native lambda's request on because its pool and queue were
	// full (lambdas' overflow): one that was passed on MaxPassedOn times is
	// answered 429 where it lands full.
	HeaderPassedOn = "Dartup-Passed-On"

	// NoticeReady: the worker subscribed and waits for an event (its first
	// one, or one after a done notice it could not send). Sent once after
	// the subscription; a ready while an event is outstanding gives up on
	// that event (502 for its caller), like GET /next on the Runtime API.
	NoticeReady = "ready"
	// NoticeDone: the worker answered the event whose id is in
	// HeaderRequestID, with HeaderLambdaStatus and, for errors,
	// HeaderErrorType; it waits for the next event.
	NoticeDone = "done"
	// NoticeInitError: the worker could not initialize; the body is the
	// AWS error document {"errorMessage","errorType"}. dartup answers the
	// first waiting request with it and stops the worker.
	NoticeInitError = "init-error"
	// NoticeTook: a direct worker took a request itself and it runs
	// longer than a moment. Headers: the request id (HeaderRequestID: the
	// caller's valid one or one the worker made), HeaderLambdaDirect "1",
	// the caller's reply subject (HeaderLambdaReply), its traceparent and
	// HeaderRequeued when the request had one. dartup then times the
	// invocation (504 and the worker killed past the timeout) and answers
	// 502 if the worker dies before its done notice. A request over
	// sooner gets no took notice: its done notice carries the same
	// headers and HeaderLambdaElapsed.
	NoticeTook = "took"
)

// MaxLambdaResponseBytes is the largest result a function may return: AWS's
// 6 MiB payload limit plus the 100 bytes of slack the Runtime API allows.
// A native worker answers 413 Function.ResponseSizeTooLarge instead of a
// larger result.
const MaxLambdaResponseBytes = 6<<20 + 100

// MaxPassedOn bounds how many times a native lambda's request is passed on
// between runners without a leaf server (HeaderPassedOn), so that full
// nodes do not pass it back and forth.
const MaxPassedOn = 2

// MaxLambdaEventBytes is the largest event a function is given (AWS's 6 MiB
// synchronous payload limit): a larger one is answered 413
// RequestEntityTooLargeException and not run.
const MaxLambdaEventBytes = 6 << 20

// TypeRequestTooLarge is the error type of an event over
// MaxLambdaEventBytes (AWS's name).
const TypeRequestTooLarge = "RequestEntityTooLargeException"

// TypeResponseTooLarge is the error type of a result over
// MaxLambdaResponseBytes (AWS's name).
const TypeResponseTooLarge = "Function.ResponseSizeTooLarge"

// MaxErrorTypeBytes bounds the error type a worker reports (a header of
// its answer and of its done notice).
const MaxErrorTypeBytes = 128

// LambdaWorkerSubject returns the private subject of native worker worker
// of lambda app: "dartup.native.APP.WORKER". Only a connection with that
// worker's token (LambdaWorkerToken) may subscribe to it, and only dartup
// publishes there.
func LambdaWorkerSubject(app, worker string) string {
	return NativeWorkerPrefix + "." + app + "." + worker
}

// ValidWorkerID reports whether id can name a native worker in a token and a
// subject: 1 to 64 lower-case hex digits.
func ValidWorkerID(id string) bool {
	return len(id) > 0 && len(id) <= 64 && isLowerHex(id)
}

// CleanErrorType makes an error type fit a header and a span: control
// characters become spaces, invalid UTF-8 is replaced, spaces around it are
// trimmed, and it is cut to MaxErrorTypeBytes on a character boundary.
func CleanErrorType(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= MaxErrorTypeBytes {
		return s
	}
	cut := MaxErrorTypeBytes
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut]
}
