package app

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// Direct mode (clientsdk.EnvLambdaDirect, docs/protocol.md §7): the worker
// takes its lambda's requests itself. Whenever it is free it
// queue-subscribes lambda.NAME in dartup's queue group; the server gives a
// request to a subscribed worker, or to dartup when none is left. On a
// request it drains that subscription at once: the server stops sending it
// requests, and those it sent meanwhile are still delivered, never dropped
// (an auto-unsubscribe after one message would be atomic at the server,
// but nats.go may write the SUB and its UNSUB in two writes, and a second
// request routed between them would be dropped by the client). It sends
// dartup a took notice (dartup times the request and answers 504 or 502
// if the worker dies), runs the handler, subscribes again when nothing
// else is waiting, sends its done notice, and only then answers the
// caller — all on one connection, so that the server has the new
// subscription before the caller can send its next request.

// directConf is what a direct worker is told by its environment.
type directConf struct {
	subject, control string        // its private subject (stop notices) and control subject
	group, lambda    string        // the queue group and lambda.NAME
	timeout          time.Duration // the function's timeout: each handler's deadline
	prefixes         []string      // the server's extra reply prefixes
}

// envTimeout is clientsdk.EnvLambdaTimeoutMS; without it 15 minutes
// (AWS's longest timeout).
func envTimeout() time.Duration {
	if ms, err := strconv.ParseInt(os.Getenv(clientsdk.EnvLambdaTimeoutMS), 10, 64); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 15 * time.Minute
}

// envPrefixes is clientsdk.EnvLambdaReplyPrefixes.
func envPrefixes() []string {
	var out []string
	for p := range strings.SplitSeq(os.Getenv(clientsdk.EnvLambdaReplyPrefixes), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// directWorker is ServeLambda in direct mode on one connection.
type directWorker struct {
	nc    *nats.Conn
	c     directConf
	h     func(context.Context, []byte) ([]byte, error)
	takes chan *nats.Msg     // requests, from each subscription in turn
	sub   *nats.Subscription // the current one (auto-unsubscribed after one message)
}

// serveDirect is ServeLambda in direct mode.
func serveDirect(ctx context.Context, nc *nats.Conn, c directConf, h func(context.Context, []byte) ([]byte, error), errs <-chan error) error {
	events := make(chan *nats.Msg, 16)
	priv, err := nc.ChanSubscribe(c.subject, events)
	if err != nil {
		return fmt.Errorf("app: subscribe to %s: %w", c.subject, err)
	}
	defer func() { _ = priv.Unsubscribe() }()
	d := &directWorker{nc: nc, c: c, h: h, takes: make(chan *nats.Msg, takesBacklog)}
	if err := d.subscribe(); err != nil {
		return err
	}
	// Both subscriptions are on the server (or refused) before dartup
	// hears of the worker.
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("app: subscribe to %s: %w", c.lambda, err)
	}
	select {
	case err := <-errs:
		return fmt.Errorf("app: native lambda worker: %w", err)
	default:
	}
	ready := &nats.Msg{Subject: c.control, Header: nats.Header{clientsdk.HeaderNotice: {clientsdk.NoticeReady}, clientsdk.HeaderLambdaDirect: {"1"}}}
	if err := nc.PublishMsg(ready); err != nil {
		return fmt.Errorf("app: tell dartup the worker is ready: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return fmt.Errorf("app: native lambda worker: %w", err)
		case m := <-events:
			if m.Header.Get(clientsdk.HeaderLambdaStop) != "" {
				return d.stop(ctx)
			}
		case m := <-d.takes:
			d.drain()
			if err := d.take(ctx, m, d.free); err != nil {
				return err
			}
		}
	}
}

// takesBacklog bounds the requests a worker holds: those the server sent
// it between the first and the arrival of its unsubscription.
const takesBacklog = 4096

// subscribe makes the worker free: lambda.NAME, in the queue group.
func (d *directWorker) subscribe() error {
	sub, err := d.nc.ChanQueueSubscribe(d.c.lambda, d.c.group, d.takes)
	if err != nil {
		return fmt.Errorf("app: subscribe to %s in queue group %s: %w", d.c.lambda, d.c.group, err)
	}
	d.sub = sub
	return nil
}

// drain unsubscribes the current subscription, if any, so that the
// requests the server sent it before the unsubscription are still
// delivered.
func (d *directWorker) drain() {
	if d.sub != nil {
		_ = d.sub.Drain()
		d.sub = nil
	}
}

// free subscribes again after a request, unless requests the server sent
// before the unsubscription are waiting: they come first.
func (d *directWorker) free() error {
	if len(d.takes) > 0 {
		return nil
	}
	return d.subscribe()
}

// stop drains the current subscription — a request the server sent it
// before the unsubscription is still delivered, never dropped — and
// answers what it brought.
func (d *directWorker) stop(ctx context.Context) error {
	d.drain()
	// The server answers this PING after the unsubscription: whatever it
	// sent the subscription before is in d.takes by then.
	_ = d.nc.Flush()
	for {
		select {
		case m := <-d.takes:
			if err := d.take(ctx, m, nil); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// take runs request m: took notice, handler, free (subscribe again; nil
// when stopping), done notice, answer. A request whose reply subject the
// worker may not publish to is dropped without running.
func (d *directWorker) take(ctx context.Context, m *nats.Msg, free func() error) error {
	if m.Reply != "" && !clientsdk.IsReplySubject(m.Reply, d.c.prefixes...) {
		if free != nil {
			return free()
		}
		return nil
	}
	inv := Invocation{RequestID: m.Header.Get(clientsdk.HeaderRequestID), TraceParent: m.Header.Get(clientsdk.HeaderTraceparent),
		ClientContext: m.Header.Get(clientsdk.HeaderClientContext), CognitoIdentity: m.Header.Get(clientsdk.HeaderCognitoIdentity),
		Deadline: time.Now().Add(d.c.timeout)}
	if !clientsdk.ValidRequestID(inv.RequestID) {
		inv.RequestID = clientsdk.NewRequestID()
	}
	took := &nats.Msg{Subject: d.c.control, Header: nats.Header{clientsdk.HeaderNotice: {clientsdk.NoticeTook},
		clientsdk.HeaderRequestID: {inv.RequestID}}}
	if m.Reply != "" {
		took.Header[clientsdk.HeaderLambdaReply] = []string{m.Reply}
	}
	if _, ok := clientsdk.ParseTraceparent(inv.TraceParent); ok {
		took.Header[clientsdk.HeaderTraceparent] = []string{inv.TraceParent}
	}
	if t := m.Header.Get(clientsdk.HeaderRequeued); t != "" && len(t) <= 64 {
		took.Header[clientsdk.HeaderRequeued] = []string{t}
	}
	if err := d.nc.PublishMsg(took); err != nil {
		return fmt.Errorf("app: tell dartup request %s was taken: %w", inv.RequestID, err)
	}
	return respond(ctx, d.nc, d.c.control, inv, m.Reply, m.Data, d.h, free)
}
