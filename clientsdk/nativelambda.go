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
)

// MaxLambdaResponseBytes is the largest result a function may return: AWS's
// 6 MiB payload limit plus the 100 bytes of slack the Runtime API allows.
// A native worker answers 413 Function.ResponseSizeTooLarge instead of a
// larger result.
const MaxLambdaResponseBytes = 6<<20 + 100

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
