package clientsdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Invoke calls lambda name with event and returns the function's result.
// Errors are *Error with the codes of the invocation protocol: 404 unknown
// lambda, 403 a daemon, 500 function error, 502 worker died or cannot
// start, 504 timeout, 413 too large, 429 throttled, 503 when nothing hosts
// it (stopped, no runner, or no dartup server at all), each with its cause.
func (c *Client) Invoke(ctx context.Context, name string, event []byte) ([]byte, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout+5*time.Second)
		defer cancel()
	}
	msg, err := RequestLambda(ctx, c.nc, name, &nats.Msg{Subject: LambdaSubject(name), Data: event}, c.askWhy)
	if err != nil {
		return nil, err
	}
	if e := ErrorFromMsg(msg); e != nil {
		return nil, e
	}
	return msg.Data, nil
}

// askWhy is AskWhy on the client's connection.
func (c *Client) askWhy(ctx context.Context, name string) *Error { return AskWhy(ctx, c.nc, name) }

// RequestLambda sends req (on lambda.NAME) and returns the answer. A request
// that finds no responders — nothing hosts NAME at that instant: the server
// says so at once, so that no request is lost while a runner subscribes —
// is explained by why: its *Error is returned; when why says a runner hosts
// NAME now (nil), req is sent once more, and a second "no responders" is a
// 503 NoRunner. Other errors are nats.go's.
func RequestLambda(ctx context.Context, nc *nats.Conn, name string, req *nats.Msg, why func(ctx context.Context, name string) *Error) (*nats.Msg, error) {
	for try := 0; ; try++ {
		msg, err := nc.RequestMsgWithContext(ctx, req)
		if !errors.Is(err, nats.ErrNoResponders) {
			return msg, err
		}
		if try > 0 {
			return nil, Errorf(503, "NoRunner", "nothing took the request on %s though a runner hosts it: it is being moved or replaced; try again", req.Subject)
		}
		if e := why(ctx, name); e != nil {
			return nil, e
		}
	}
}

// askWhyWait bounds the request on LambdaWhySubject.
const askWhyWait = 5 * time.Second

// AskWhy asks the dartup servers why lambda name took no request (see
// LambdaWhySubject): it returns their *Error, nil when a runner hosts name
// now, 503 NoRunner when no dartup server answers (a bare NATS server), or
// a 503 that says the question itself failed.
func AskWhy(ctx context.Context, nc *nats.Conn, name string) *Error {
	ctx, cancel := context.WithTimeout(ctx, askWhyWait)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, LambdaWhySubject(name), nil)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return Errorf(503, "NoRunner", "nothing answers %s: no dartup server or runner is connected", LambdaSubject(name))
	case err != nil:
		return &Error{Code: 503, Type: "NoRunner", Message: fmt.Sprintf("nothing answers %s, and asking %s why failed: %v", LambdaSubject(name), LambdaWhySubject(name), err)}
	}
	return ErrorFromMsg(msg)
}
