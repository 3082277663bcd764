package clientsdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Service-error headers set by nats.go micro handlers and by lambda
// invocations, read by `nats req` and by this package.
const (
	HeaderServiceError     = "Nats-Service-Error"
	HeaderServiceErrorCode = "Nats-Service-Error-Code"
)

// Error is an error answered by a dartup server: a control API failure or a
// lambda invocation failure. Code follows HTTP's meaning (4xx: the caller's
// mistake, 5xx: the server's or the function's).
type Error struct {
	// Code is the HTTP-like status: 400, 403, 404, 409, 413, 429, 500, 502, 503, 504.
	Code int `json:"code"`
	// Type is a short machine-readable kind, e.g. "NotFound" or the function's
	// own errorType.
	Type string `json:"errorType"`
	// Message says what went wrong and, where it can, what to do.
	Message string `json:"errorMessage"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("%s (%d %s)", e.Message, e.Code, e.Type)
	}
	return fmt.Sprintf("%s (%d)", e.Message, e.Code)
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, clientsdk.ErrNotFound) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Type == "" && t.Message == ""
}

// Sentinels for errors.Is on the codes callers usually branch on.
var (
	ErrBadRequest = &Error{Code: 400}
	ErrForbidden  = &Error{Code: 403}
	ErrNotFound   = &Error{Code: 404}
	ErrConflict   = &Error{Code: 409}
	ErrTooLarge   = &Error{Code: 413}
	ErrThrottled  = &Error{Code: 429}
	ErrFunction   = &Error{Code: 500}
	ErrWorkerDied = &Error{Code: 502}
	ErrNoRunner   = &Error{Code: 503}
	ErrTimeout    = &Error{Code: 504}
)

// Errorf builds an *Error with a formatted message.
func Errorf(code int, typ, format string, args ...any) *Error {
	return &Error{Code: code, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// Body returns the JSON body sent with the service-error headers.
func (e *Error) Body() []byte {
	b, _ := json.Marshal(e)
	return b
}

// ErrorFromMsg returns the *Error carried by msg's service-error headers, or
// nil when msg is not an error reply.
func ErrorFromMsg(msg *nats.Msg) *Error {
	if msg == nil || msg.Header == nil {
		return nil
	}
	desc := msg.Header.Get(HeaderServiceError)
	codeStr := msg.Header.Get(HeaderServiceErrorCode)
	if desc == "" && codeStr == "" {
		return nil
	}
	e := &Error{}
	if len(msg.Data) > 0 && json.Unmarshal(msg.Data, e) == nil && e.Message != "" {
		if e.Code == 0 {
			e.Code, _ = strconv.Atoi(codeStr)
		}
		return e
	}
	code, _ := strconv.Atoi(codeStr)
	return &Error{Code: code, Message: desc}
}

// MaxErrorMessageBytes bounds the message of a service-error reply: a
// function may post an error body of megabytes, and the reply carries the
// message twice (header and JSON body) yet must fit the connection's payload
// limit, or the caller would get no answer at all. RespondError cuts longer
// messages.
const MaxErrorMessageBytes = 32 << 10

// RespondError answers request m with e as a service error: the
// Nats-Service-Error and Nats-Service-Error-Code headers and e's JSON body,
// the form ErrorFromMsg decodes and `nats req` shows. A message over
// MaxErrorMessageBytes is cut, saying how much was cut.
func RespondError(m *nats.Msg, e *Error) error {
	return m.RespondMsg(ErrorReply(m.Reply, e))
}

// ErrorReply returns the message that answers a request with e as a service
// error, addressed to subject: the Nats-Service-Error and
// Nats-Service-Error-Code headers and e's JSON body. A message over
// MaxErrorMessageBytes is cut, saying how much was cut.
func ErrorReply(subject string, e *Error) *nats.Msg {
	if n := len(e.Message); n > MaxErrorMessageBytes {
		cut := *e
		cut.Message = strings.ToValidUTF8(e.Message[:MaxErrorMessageBytes], "") + fmt.Sprintf("… (%d more bytes cut)", n-MaxErrorMessageBytes)
		e = &cut
	}
	r := nats.NewMsg(subject)
	r.Header.Set(HeaderServiceError, e.Message)
	r.Header.Set(HeaderServiceErrorCode, strconv.Itoa(e.Code))
	r.Data = e.Body()
	return r
}

// AsError returns err as an *Error when it is one (wrapped or not).
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
