package app

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// A worker gives up its subscription only when, taking a request, it finds
// more than its share of the queue waiting in its connection; until then
// the server goes on sending it requests. Those wait in a buffer of
// takesBacklog, and nats.go drops a message that finds the buffer full (a
// slow consumer, not reported to ServeLambda): its caller waits for its
// own timeout, and dartup never hears of it. So the share must leave room
// for what the server sends while the worker runs one request.
//
// Callers that send quick requests (100 µs each) faster than the worker
// runs them — 100 a millisecond, not all at once (a burst sent at once
// reaches the worker before any unsubscription could, whatever its share)
// — must not make the worker's connection drop any. With a share of 0 (the
// worker as it was before it ran requests back to back) it drops none;
// with --queue 100000 and --max-workers 1 (DARTUP_LAMBDA_BACKLOG=100000)
// it must drop none either.
func TestDirectHugeShareDropsNothing(t *testing.T) {
	for _, share := range []string{"0", "100000"} {
		t.Run("share="+share, func(t *testing.T) {
			t.Setenv(clientsdk.EnvLambdaBacklog, share)
			if dropped := shareBurst(t); dropped > 0 {
				t.Fatalf("the worker's connection dropped requests (%d or more) (its buffer of %d full; share %d): their callers get no answer",
					dropped, takesBacklog, envBacklog())
			}
		})
	}
}

// shareBurst sends 10,000 quick requests, 100 a millisecond, to a direct
// worker with the share of its environment, and returns how many requests
// its connection dropped (1 when it dropped some but cannot tell).
func shareBurst(t *testing.T) int {
	b := testutil.StartBroker(t)
	slow := make(chan *nats.Subscription, 1)
	worker := testutil.Connect(t, b.NATSURL(), nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) && s != nil {
			select {
			case slow <- s:
			default:
			}
		}
	}))
	caller, ctl := testutil.Connect(t, b.NATSURL()), testutil.Connect(t, b.NATSURL())
	notices := make(chan *nats.Msg, 1<<16)
	if _, err := ctl.ChanSubscribe("test.control", notices); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Flush(); err != nil {
		t.Fatal(err)
	}
	h := func(_ context.Context, ev []byte) ([]byte, error) {
		for end := time.Now().Add(100 * time.Microsecond); time.Now().Before(end); {
		}
		return ev, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveLambda(ctx, worker, "test.worker", "test.control", h, nil,
			&directConf{group: "g", lambda: "lambda.burst", timeout: time.Minute, backlog: envBacklog()})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-notices: // ready: subscribed
	case <-time.After(10 * time.Second):
		t.Fatal("no ready notice")
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 10000; i += 100 {
		for j := range 100 {
			if err := caller.PublishRequest("lambda.burst", "_INBOX.burst."+strconv.Itoa(i+j), []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
		if err := caller.Flush(); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	// The server answers the worker's PING after what it sent it before:
	// each request has reached the worker's buffer, or was dropped (and
	// the report queued for the error handler), by then.
	if err := worker.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-slow:
		if n, err := s.Dropped(); err == nil {
			return n
		}
		return 1 // at least one; the subscription is gone (drained) since
	case <-time.After(2 * time.Second): // the handler had long run: none dropped
		return 0
	}
}
