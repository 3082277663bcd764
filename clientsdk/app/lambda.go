package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// ErrNotNativeLambda is returned by ServeLambda when the program was not
// started as a native lambda worker (DARTUP_LAMBDA_SUBJECT or
// DARTUP_LAMBDA_CONTROL is missing).
var ErrNotNativeLambda = errors.New("app: not a native lambda worker: " + clientsdk.EnvLambdaSubject +
	" is not set; push it with dartup push --lambda --protocol nats")

// ErrorTyper is implemented by errors that name their own error type: a
// handler error that has ErrorType() is reported with that errorType (the
// caller sees it in the 500 service error, `dartup info` counts it). A
// *clientsdk.Error gives its Type and Message. Any other error is reported
// with its Go type's name, as aws-lambda-go does ("errorString" for
// errors.New).
type ErrorTyper interface {
	ErrorType() string
}

// Invocation describes the invocation a ServeLambda handler runs; get it
// with InvocationFromContext.
type Invocation struct {
	// RequestID is the invocation's id (the same on every attempt of an
	// async event).
	RequestID string
	// Deadline is when dartup gives up on the invocation (504) and kills
	// the worker; the handler's ctx ends then too.
	Deadline time.Time
	// TraceParent is the invocation's hop of its W3C trace
	// (docs/tracing.md): make the handler's spans its children.
	TraceParent string
	// ClientContext and CognitoIdentity are the caller's
	// Lambda-Runtime-Client-Context and Lambda-Runtime-Cognito-Identity
	// headers, when it sent them.
	ClientContext, CognitoIdentity string
}

type invocationKey struct{}

// InvocationFromContext returns the invocation a ServeLambda handler's ctx
// belongs to.
func InvocationFromContext(ctx context.Context) (Invocation, bool) {
	inv, ok := ctx.Value(invocationKey{}).(Invocation)
	return inv, ok
}

// ServeLambda runs h as a native lambda worker (dartup push --lambda
// --protocol nats): it connects with the worker's own credentials from its
// environment (as Connect does), subscribes to its private subject, tells
// dartup it is ready, and then, one event at a time, calls h with a ctx that
// ends at the invocation's deadline (InvocationFromContext tells the request
// id and trace), tells dartup it is done (so that dartup has the worker
// back before the caller can send its next request), and answers the
// caller directly:
//
//   - a result: the bytes as they are; one over 6 MiB
//     (clientsdk.MaxLambdaResponseBytes) is not sent: the caller gets 413
//     Function.ResponseSizeTooLarge;
//   - an error (or a panic, recovered): a 500 service error whose errorType
//     is the error's (see ErrorTyper) and errorMessage its text.
//
// Past the deadline dartup answers 504 and kills the process: a handler
// that ends at its ctx's deadline races that answer.
//
//	func main() {
//		err := app.ServeLambda(context.Background(), func(ctx context.Context, event []byte) ([]byte, error) {
//			return []byte("Hello, " + string(event) + "!"), nil
//		})
//		if err != nil {
//			log.Fatal(err)
//		}
//	}
//
// ServeLambda returns nil when dartup tells the worker to stop (it is idle
// past its keep-warm, replaced or removed; SIGTERM follows at once),
// ctx.Err() when ctx ends, ErrNotNativeLambda outside a native worker, and
// the connection's or the subscription's error (e.g. a permissions
// violation) otherwise.
func ServeLambda(ctx context.Context, h func(ctx context.Context, event []byte) ([]byte, error)) error {
	subject, control := os.Getenv(clientsdk.EnvLambdaSubject), os.Getenv(clientsdk.EnvLambdaControl)
	if subject == "" || control == "" {
		return ErrNotNativeLambda
	}
	errs := make(chan error, 1)
	report := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			select {
			case errs <- err:
			default:
			}
		}
	})
	nc, err := dial(ctx, "dartup-lambda "+os.Getenv("AWS_LAMBDA_FUNCTION_NAME"), report)
	if err != nil {
		return err
	}
	defer func() {
		_ = nc.FlushTimeout(time.Second)
		nc.Close()
	}()
	if group := os.Getenv(clientsdk.EnvLambdaDirect); group != "" {
		if dc := os.Getenv(clientsdk.EnvLambdaDirectControl); dc != "" {
			control = dc
		}
		return serveLambda(ctx, nc, subject, control, h, errs, &directConf{group: group,
			lambda: clientsdk.LambdaSubject(os.Getenv("AWS_LAMBDA_FUNCTION_NAME")), timeout: envTimeout(),
			backlog: envBacklog(), prefixes: envPrefixes()})
	}
	return serveLambda(ctx, nc, subject, control, h, errs, nil)
}

// serveLambda is ServeLambda on connection nc; dc, when not nil, is
// direct mode's configuration (lambda_direct.go).
func serveLambda(ctx context.Context, nc *nats.Conn, subject, control string, h func(context.Context, []byte) ([]byte, error), errs <-chan error, dc *directConf) error {
	events := make(chan *nats.Msg, 16)
	var d *directWorker
	if dc != nil {
		d = &directWorker{nc: nc, c: *dc, control: control, h: h, takes: make(chan *nats.Msg, takesBacklog), journal: openJournal()}
		defer d.leave()
	}
	sub, err := subscribeEvents(nc, subject, events, d)
	if err != nil {
		return fmt.Errorf("app: subscribe to %s: %w", subject, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ready := &nats.Msg{Subject: control, Header: nats.Header{clientsdk.HeaderNotice: {clientsdk.NoticeReady}}}
	var takes chan *nats.Msg // nil without direct mode: never ready
	if d != nil {
		if err := d.subscribe(); err != nil {
			return err
		}
		takes = d.takes
		ready.Header[clientsdk.HeaderLambdaDirect] = []string{"1"}
	}
	// The subscriptions are on the server (or refused) before dartup
	// hears of the worker.
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("app: subscribe to %s: %w", subject, err)
	}
	select {
	case err := <-errs:
		return fmt.Errorf("app: native lambda worker: %w", err)
	default:
	}
	if err := nc.PublishMsg(ready); err != nil {
		return fmt.Errorf("app: tell dartup the worker is ready: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			if d != nil {
				_ = d.sendHeld()
			}
			return ctx.Err()
		case err := <-errs:
			return fmt.Errorf("app: native lambda worker: %w", err)
		case m := <-events:
			switch {
			case m.Header.Get(clientsdk.HeaderLambdaStop) != "" && d != nil:
				return d.stop(ctx)
			case m.Header.Get(clientsdk.HeaderLambdaStop) != "":
				return nil
			case d == nil:
				if err := answer(ctx, nc, control, m, h); err != nil {
					return err
				}
			}
		case m := <-takes:
			if err := d.take(ctx, m, false); err != nil {
				return err
			}
		}
	}
}

// answer runs h on event m, sends the done notice, then answers the
// caller. The done goes first: dartup must have the worker back before the
// caller can send its next request on the answer (else dartup would start
// another worker for it).
func answer(ctx context.Context, nc *nats.Conn, control string, m *nats.Msg, h func(context.Context, []byte) ([]byte, error)) error {
	return respond(ctx, nc, control, invocationOf(m.Header), m.Header.Get(clientsdk.HeaderLambdaReply), m.Data, h, nil)
}

// respond runs h on event for inv, sends the done notice, then answers
// reply. notice, when not nil, is given the outcome (nil: a result) and
// returns the notice to send, nil for none now (direct mode: subscribe
// again, a record to hold for a batch); without it the notice is
// doneNotice's. An event over 6 MiB is not run: 413.
func respond(ctx context.Context, nc *nats.Conn, control string, inv Invocation, reply string, event []byte,
	h func(context.Context, []byte) ([]byte, error), notice func(e *clientsdk.Error) (*nats.Msg, error)) error {
	var out []byte
	var e *clientsdk.Error
	if len(event) > clientsdk.MaxLambdaEventBytes {
		e = clientsdk.Errorf(413, clientsdk.TypeRequestTooLarge, "the event is %d bytes, over the payload limit of %d (6 MiB); it was not run", len(event), clientsdk.MaxLambdaEventBytes)
	} else {
		hctx, cancel := context.WithDeadline(context.WithValue(ctx, invocationKey{}, inv), inv.Deadline)
		var err error
		out, err = call(hctx, h, event)
		cancel()
		e = outcome(nc, out, err)
	}
	var done *nats.Msg
	if notice == nil {
		done = doneNotice(control, inv.RequestID, e)
	} else {
		var err error
		if done, err = notice(e); err != nil {
			return err
		}
	}
	if done != nil {
		if err := nc.PublishMsg(done); err != nil {
			return fmt.Errorf("app: tell dartup request %s is done: %w", inv.RequestID, err)
		}
	}
	if reply == "" {
		return nil // nobody waits for the answer
	}
	msg := &nats.Msg{Subject: reply, Data: out}
	if e != nil {
		msg = clientsdk.ErrorReply(reply, e)
	}
	if err := nc.PublishMsg(msg); err != nil {
		fmt.Fprintf(os.Stderr, "dartup: cannot answer request %s: %v\n", inv.RequestID, err)
	}
	return nil
}

// doneNotice is the done notice, in headers, of request id with outcome
// e (nil: a result).
func doneNotice(control, id string, e *clientsdk.Error) *nats.Msg {
	done := &nats.Msg{Subject: control, Header: nats.Header{
		clientsdk.HeaderNotice:       {clientsdk.NoticeDone},
		clientsdk.HeaderRequestID:    {id},
		clientsdk.HeaderLambdaStatus: {"200"},
	}}
	if e != nil {
		done.Header[clientsdk.HeaderLambdaStatus] = []string{strconv.Itoa(e.Code)}
		done.Header[clientsdk.HeaderErrorType] = []string{e.Type}
	}
	return done
}

// invocationOf reads an event's headers; a missing or invalid deadline is
// 15 minutes away (AWS's longest timeout).
func invocationOf(h nats.Header) Invocation {
	inv := Invocation{RequestID: h.Get(clientsdk.HeaderRequestID), TraceParent: h.Get(clientsdk.HeaderTraceparent),
		ClientContext: h.Get(clientsdk.HeaderClientContext), CognitoIdentity: h.Get(clientsdk.HeaderCognitoIdentity)}
	if ms, err := strconv.ParseInt(h.Get(clientsdk.HeaderDeadline), 10, 64); err == nil && ms > 0 {
		inv.Deadline = time.UnixMilli(ms)
	} else {
		inv.Deadline = time.Now().Add(15 * time.Minute)
	}
	return inv
}

// outcome is the error the caller gets for out and err: nil for a result,
// the function's error as a service error, or 413 for a result over the
// limit (or over what the connection can carry).
func outcome(nc *nats.Conn, out []byte, err error) *clientsdk.Error {
	switch {
	case err != nil:
		return functionError(err)
	case len(out) > clientsdk.MaxLambdaResponseBytes || int64(len(out)) > nc.MaxPayload():
		return tooLarge(len(out))
	}
	return nil
}

func tooLarge(n int) *clientsdk.Error {
	return clientsdk.Errorf(413, clientsdk.TypeResponseTooLarge,
		"Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes).", n, clientsdk.MaxLambdaResponseBytes)
}

// call runs h, turning a panic into an error (its stack goes to stderr).
func call(ctx context.Context, h func(context.Context, []byte) ([]byte, error), event []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "dartup: the handler panicked: %v\n%s", r, debug.Stack())
			err = panicError{r}
		}
	}()
	return h(ctx, event)
}

// panicError is a recovered panic; its type is the panic value's.
type panicError struct{ v any }

func (p panicError) Error() string     { return fmt.Sprint(p.v) }
func (p panicError) ErrorType() string { return typeName(p.v) }

// functionError is the 500 service error err becomes.
func functionError(err error) *clientsdk.Error {
	e := &clientsdk.Error{Code: 500, Message: err.Error()}
	var ce *clientsdk.Error
	var typer ErrorTyper
	switch {
	case errors.As(err, &ce):
		e.Type, e.Message = ce.Type, ce.Message
	case errors.As(err, &typer):
		e.Type = typer.ErrorType()
	default:
		e.Type = typeName(err)
	}
	if e.Type = clientsdk.CleanErrorType(e.Type); e.Type == "" {
		e.Type = "Unhandled"
	}
	return e
}

// typeName is aws-lambda-go's error type: the Go type's name, without the
// pointer.
func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return ""
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}
