package app

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// dartup sends a direct worker its new share of the queue (Dartup-Backlog
// on the worker's subject) each time the lambda's pool fills or stops
// being full: a sibling that crashes in a loop (removed: not full; the
// next request starts another: full) sends two a crash. A worker that
// runs a long request reads none of them meanwhile; they wait in its
// subscription to its subject, whose buffer is small, and nats.go drops a
// message that finds it full (a slow consumer, not reported). So after 20
// of them the messages behind are lost: the last share (the worker keeps
// a share while the pool has room, and the lambda does not scale out), or
// the Dartup-Stop dartup sends a busy worker when the lambda is removed or
// dartup shuts down. The Stop is the one this test can see: told to stop
// after 20 share changes during one request, the worker must stop once
// the request is over.
func TestDirectShareFloodKeepsStop(t *testing.T) {
	b := testutil.StartBroker(t)
	worker, caller, ctl := testutil.Connect(t, b.NATSURL()), testutil.Connect(t, b.NATSURL()), testutil.Connect(t, b.NATSURL())
	notices := make(chan *nats.Msg, 64)
	if _, err := ctl.ChanSubscribe("test.control", notices); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Flush(); err != nil {
		t.Fatal(err)
	}
	running, release := make(chan struct{}, 1), make(chan struct{})
	h := func(_ context.Context, ev []byte) ([]byte, error) {
		running <- struct{}{}
		<-release
		return ev, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveLambda(ctx, worker, "test.worker", "test.control", h, nil,
			&directConf{group: "g", lambda: "lambda.flood", timeout: time.Minute})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-release:
		default:
			close(release)
		}
	})
	awaitNotice(t, notices) // ready: subscribed
	if err := caller.PublishRequest("lambda.flood", "_INBOX.flood.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the handler")
	}
	for i := range 20 {
		share := strconv.Itoa(i % 2 * maxShare) // 0, 256, 0, …: the pool flapping
		if err := ctl.PublishMsg(&nats.Msg{Subject: "test.worker", Header: nats.Header{clientsdk.HeaderLambdaBacklog: {share}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ctl.PublishMsg(&nats.Msg{Subject: "test.worker", Header: nats.Header{clientsdk.HeaderLambdaStop: {"1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Flush(); err != nil {
		t.Fatal(err)
	}
	// The server answers the worker's PING after what it sent it before:
	// each message is in the worker's buffer, or was dropped, by then.
	if err := worker.Flush(); err != nil {
		t.Fatal(err)
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the worker told to stop returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the worker told to stop (after 20 share changes during one request) did not stop: its Dartup-Stop was dropped")
	}
}

// awaitNotice is the next notice on notices, within 10 s.
func awaitNotice(t *testing.T, notices <-chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-notices:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no notice within 10 s")
		return nil
	}
}
