// Package app is the Go SDK for programs that run on dartup. It connects to
// NATS with what the runner puts in the worker's environment, tells the
// program which instance it is, and gives it angel3-style pub/sub: an event
// published by one instance reaches every other instance of the same app, on
// any node, and never the sender itself.
//
//	a, err := app.Connect(ctx)
//	sub, _ := a.Subscribe(ctx, "user_upgraded")
//	_ = a.Publish(ctx, "user_upgraded", map[string]any{"id": 42})
//	msg, _ := sub.Next(ctx) // from another instance
//
// Events travel on "dartup.app.APP.EVENT" as JSON, with the sender's instance
// ("APP.INDEX") in the Dartup-Sender header; docs/protocol.md has the wire format.
//
// ServeLambda runs a handler as a native lambda worker (dartup push --lambda
// --protocol nats): events over NATS, answers straight to the callers.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// HeaderSender carries the publishing instance ("APP.INDEX") of an event.
const HeaderSender = "Dartup-Sender"

// EventSubject returns the subject of an app event: "dartup.app.APP.EVENT".
func EventSubject(app, event string) string { return "dartup.app." + app + "." + event }

// Instance describes the running instance, from the worker's environment.
type Instance struct {
	// App is DARTUP_APP.
	App string
	// Index is DARTUP_INSTANCE (stable across restarts); -1 for lambda workers.
	Index int
	// Node is DARTUP_NODE, the runner node's id.
	Node string
}

// ID returns "APP.INDEX", the instance's identity as a sender.
func (i Instance) ID() string { return i.App + "." + strconv.Itoa(i.Index) }

// InstanceFromEnv reads DARTUP_APP, DARTUP_INSTANCE and DARTUP_NODE. It fails
// when DARTUP_APP is missing or invalid (the program is not running on dartup).
func InstanceFromEnv() (Instance, error) {
	in := Instance{App: os.Getenv("DARTUP_APP"), Node: os.Getenv("DARTUP_NODE"), Index: -1}
	if in.App == "" {
		return in, errors.New("app: DARTUP_APP is not set; is this program running on dartup?")
	}
	if err := clientsdk.ValidateName(in.App); err != nil {
		return in, fmt.Errorf("app: DARTUP_APP: %w", err)
	}
	if s := os.Getenv("DARTUP_INSTANCE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return in, fmt.Errorf("app: DARTUP_INSTANCE=%q is not a number", s)
		}
		in.Index = n
	}
	return in, nil
}

// Conn is an app's connection to dartup.
type Conn struct {
	nc       *nats.Conn
	instance Instance
}

// Connect connects with NATS_URL and the credentials the runner gave the
// worker (NATS_TOKEN, or NATS_USER and NATS_PASSWORD), the CA that verifies
// the server's TLS certificate (NATS_CA, a PEM file) and its reply-inbox
// prefix (NATS_INBOX_PREFIX), with NoEcho so that the
// connection never receives its own events. opts are added to nats.go's.
// Errors: a missing environment (not on dartup) or a failed connection.
func Connect(ctx context.Context, opts ...nats.Option) (*Conn, error) {
	in, err := InstanceFromEnv()
	if err != nil {
		return nil, err
	}
	nc, err := dial(ctx, "dartup-app "+in.ID(), opts...)
	if err != nil {
		return nil, err
	}
	return &Conn{nc: nc, instance: in}, nil
}

// dial connects as Connect does, with connection name name.
func dial(ctx context.Context, name string, opts ...nats.Option) (*nats.Conn, error) {
	url := os.Getenv("NATS_URL")
	if url == "" {
		url = clientsdk.DefaultURL
	}
	base := []nats.Option{nats.NoEcho(), nats.Name(name), nats.MaxReconnects(-1)}
	if p := os.Getenv("NATS_INBOX_PREFIX"); p != "" {
		base = append(base, nats.CustomInboxPrefix(p)) // the only inboxes a worker may read
	}
	if ca := os.Getenv("NATS_CA"); ca != "" {
		base = append(base, nats.RootCAs(ca)) // the server's TLS CA, from the runner
	}
	if tok := os.Getenv("NATS_TOKEN"); tok != "" {
		base = append(base, nats.Token(tok))
	} else if u := os.Getenv("NATS_USER"); u != "" {
		base = append(base, nats.UserInfo(u, os.Getenv("NATS_PASSWORD")))
	}
	if d, ok := ctx.Deadline(); ok {
		base = append(base, nats.Timeout(time.Until(d)))
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("app: connect to %s: %w", url, err)
	}
	return nc, nil
}

// NewConn wraps an existing connection (which should use nats.NoEcho) for instance in.
func NewConn(nc *nats.Conn, in Instance) *Conn { return &Conn{nc: nc, instance: in} }

// Instance returns which instance this program is.
func (c *Conn) Instance() Instance { return c.instance }

// NATS returns the underlying connection, for the app's own subjects.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// Close flushes and closes the connection.
func (c *Conn) Close() {
	_ = c.nc.Drain()
}

// validEvent checks that an event name is one subject token.
func validEvent(event string) error {
	if err := clientsdk.ValidateName(event); err != nil {
		return fmt.Errorf("app: invalid event name %q: use letters, digits, '-' and '_'", event)
	}
	return nil
}

// Publish sends value, encoded as JSON, to every other instance of the app
// subscribed to event. Publishing an event nobody listens to is not an error.
// Errors: an invalid event name, a value that does not encode, a closed connection.
func (c *Conn) Publish(_ context.Context, event string, value any) error {
	if err := validEvent(event); err != nil {
		return err
	}
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("app: encode %s: %w", event, err)
	}
	m := &nats.Msg{Subject: EventSubject(c.instance.App, event), Data: b, Header: nats.Header{HeaderSender: []string{c.instance.ID()}}}
	return c.nc.PublishMsg(m)
}

// Message is an event received from another instance.
type Message struct {
	Event string
	// From is the sender's instance ("APP.INDEX").
	From string
	// Data is the JSON value.
	Data json.RawMessage
}

// Decode decodes the message's JSON value into v.
func (m Message) Decode(v any) error { return json.Unmarshal(m.Data, v) }

// Subscription receives one event's messages, in the order each sender sent them.
type Subscription struct {
	c     *Conn
	event string
	sub   *nats.Subscription
}

// Subscribe starts receiving event from the other instances of the app.
// Errors: an invalid event name, a closed connection.
func (c *Conn) Subscribe(_ context.Context, event string) (*Subscription, error) {
	if err := validEvent(event); err != nil {
		return nil, err
	}
	sub, err := c.nc.SubscribeSync(EventSubject(c.instance.App, event))
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	if err := c.nc.Flush(); err != nil {
		return nil, err
	}
	return &Subscription{c: c, event: event, sub: sub}, nil
}

// Next returns the next message from another instance; it skips this
// instance's own events (sent by another connection of the same instance).
// Errors: ctx done, subscription closed.
func (s *Subscription) Next(ctx context.Context) (Message, error) {
	self := s.c.instance.ID()
	for {
		m, err := s.sub.NextMsgWithContext(ctx)
		if err != nil {
			return Message{}, err
		}
		from := m.Header.Get(HeaderSender)
		if from == self {
			continue
		}
		return Message{Event: s.event, From: from, Data: m.Data}, nil
	}
}

// Unsubscribe stops the subscription.
func (s *Subscription) Unsubscribe() error { return s.sub.Unsubscribe() }

// Request invokes lambda name with payload and returns its result; errors are
// *clientsdk.Error as for clientsdk.Client.Invoke.
func (c *Conn) Request(ctx context.Context, lambda string, payload []byte) ([]byte, error) {
	cl, err := clientsdk.Connect(ctx, clientsdk.WithConn(c.nc))
	if err != nil {
		return nil, err
	}
	return cl.Invoke(ctx, lambda, payload)
}
