package broker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// With DirectLambdas, the fallback connection (through the broker's leaf
// server) gets a queue-group request only when no client member is left;
// Shutdown closes it. Without, there is none.
func TestDirectLambdasFallback(t *testing.T) {
	if b := testutil.StartBroker(t); b.FallbackConn() != nil {
		t.Fatal("a fallback connection without DirectLambdas")
	}
	b := testutil.StartBroker(t, func(c *broker.Config) { c.DirectLambdas = true })
	fc := b.FallbackConn()
	if fc == nil || !fc.IsConnected() {
		t.Fatal("no connected fallback connection")
	}
	subject := clientsdk.LambdaSubject("x")
	var fell, worked atomic.Int32
	if _, err := fc.QueueSubscribe(subject, clientsdk.LambdaQueueGroup, func(m *nats.Msg) { fell.Add(1); _ = m.Respond([]byte("fallback")) }); err != nil {
		t.Fatal(err)
	}
	caller := testutil.Connect(t, b.NATSURL())
	testutil.WaitFor(t, 5*time.Second, "the fallback's interest to reach the server", func() bool {
		_, err := caller.Request(subject, nil, 200*time.Millisecond)
		return err == nil
	})
	worker := testutil.Connect(t, b.NATSURL())
	ws, err := worker.QueueSubscribe(subject, clientsdk.LambdaQueueGroup, func(m *nats.Msg) { worked.Add(1); _ = m.Respond([]byte("worker")) })
	if err != nil {
		t.Fatal(err)
	}
	_ = worker.Flush()
	fell.Store(0)
	worked.Store(0)
	for range 200 {
		if _, err := caller.Request(subject, nil, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if worked.Load() != 200 || fell.Load() != 0 {
		t.Fatalf("with a worker subscribed: worker %d, fallback %d", worked.Load(), fell.Load())
	}
	_ = ws.Unsubscribe()
	_ = worker.Flush()
	for range 50 {
		if m, err := caller.Request(subject, nil, 5*time.Second); err != nil || string(m.Data) != "fallback" {
			t.Fatalf("without a worker: %v", err)
		}
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !fc.IsClosed() {
		t.Fatal("the fallback connection is open after Shutdown")
	}
}
