package lambdas_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// A node without a leaf server whose pool and queue are full passes a
// native lambda's request on (overflow.go); with no other member of the
// queue group left, its caller gets 429 saying so, and once the queue has
// room the node takes requests again at once (its subscription is back,
// not "no responders").
func TestOverflowWithNobodyElseIsThrottled(t *testing.T) {
	r := newRig(t)
	r.deployNative("full", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 1 })
	for round := range 3 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var ok int
		var throttled []string
		for range 5 {
			wg.Go(func() {
				_, e := r.invoke("full", map[string]any{"sleep_ms": 300})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case e == nil:
					ok++
				case e.Code == 429:
					throttled = append(throttled, e.Message)
				default:
					t.Errorf("round %d: %v", round, e)
				}
			})
		}
		wg.Wait()
		if ok != 2 || len(throttled) != 3 {
			t.Fatalf("round %d: %d answered, %d throttled: want 2 (1 running + 1 queued) and 3", round, ok, len(throttled))
		}
		for _, m := range throttled {
			if !strings.Contains(m, "on every node that hosts it") {
				t.Fatalf("round %d: 429 %q: not the passed-on request's", round, m)
			}
		}
		// At once: a request now must find the subscription again.
		if got := r.mustInvoke("full", "again"); got != "Hello, again!" {
			t.Fatalf("round %d: after the overflow: %q", round, got)
		}
	}
}

// A request that was passed on clientsdk.MaxPassedOn times is answered 429
// where it finds the pool full, not passed on again; a forged count past
// it is the same.
func TestOverflowHopsAreBounded(t *testing.T) {
	r := newRig(t)
	r.deployNative("hops", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 1 })
	r.mustInvoke("hops", "warm")
	for _, hops := range []string{"2", "99"} {
		// On one connection, in order: the first runs, the second waits in
		// the queue, the third finds both full.
		inbox := nats.NewInbox()
		slow, err := r.client.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := r.client.PublishRequest(clientsdk.LambdaSubject("hops"), inbox, []byte(`{"sleep_ms":300}`)); err != nil {
				t.Fatal(err)
			}
		}
		m := nats.NewMsg(clientsdk.LambdaSubject("hops"))
		m.Header.Set(clientsdk.HeaderPassedOn, hops)
		m.Data = []byte(`"x"`)
		resp, err := r.client.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := clientsdk.ErrorFromMsg(resp); e == nil || e.Code != 429 || strings.Contains(e.Message, "on every node") {
			t.Fatalf("%s hops: %q %+v: want this node's own 429, not passed on", hops, resp.Data, e)
		}
		for range 2 {
			if _, err := slow.NextMsg(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		_ = slow.Unsubscribe()
	}
}

// An overflowing node whose queue empties by timeouts, and whose worker is
// killed by its own, subscribes again although no worker is left to look
// for work: a request after that is answered, not "no responders".
func TestOverflowComesBackAfterTimeouts(t *testing.T) {
	r := newRig(t)
	r.deployNative("slowpoke", func(l *clientsdk.LambdaSpec) {
		l.MaxWorkers = 1
		l.Queue = 1
		l.Timeout = clientsdk.Duration(time.Second)
	})
	pid := r.pid("slowpoke")
	codes := map[int]int{}
	inbox := nats.NewInbox()
	sub, err := r.client.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // in order: running (killed at 1 s), queued (its deadline passes), passed on (429)
		if err := r.client.PublishRequest(clientsdk.LambdaSubject("slowpoke"), inbox, []byte(`{"sleep_ms":5000}`)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		code := 200
		if e := clientsdk.ErrorFromMsg(m); e != nil {
			code = e.Code
		}
		codes[code]++
	}
	if codes[504] != 2 || codes[429] != 1 {
		t.Fatalf("answers %v: want 2 timeouts (running, queued) and 1 throttled", codes)
	}
	testutil.WaitFor(t, 10*time.Second, "the timed-out worker to be gone", func() bool { return !alive(pid) })
	if got := r.mustInvoke("slowpoke", "back"); got != "Hello, back!" {
		t.Fatalf("after the timeouts: %q", got)
	}
}
