package lambdas_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// A full node that finds no other member to pass a request on to takes
// requests again at once, though its queue is still more than half full:
// the callers after that one get its 429, not "no responders" (which
// clientsdk and the gateway answer 503 NoRunner, "it is being moved or
// replaced", while the lambda is hosted and merely throttled).
// With a node answering the presence probe as a direct host but gone from
// the queue group, the first request passed on finds no other member, and
// the node subscribes again before its caller gets the 429.
func TestOverflowAloneStaysSubscribed(t *testing.T) {
	t.Run("no other host", func(t *testing.T) { overflowAlone(t, false) })
	t.Run("a direct host gone", func(t *testing.T) { overflowAlone(t, true) })
}

func overflowAlone(t *testing.T, fakeHost bool) {
	r := newRig(t)
	r.deployNative("alone", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 2 })
	r.mustInvoke("alone", "warm")
	if fakeHost {
		fakeDirectHost(t, r, "alone")
	}
	slow := r.sendInOrder("alone", 3, `{"sleep_ms":1500}`) // running, 2 queued
	for i := range 3 {                                     // the first is passed on and comes back 429; the others find the node again
		resp, err := r.client.Request(clientsdk.LambdaSubject("alone"), []byte(`"x"`), 5*time.Second)
		if err != nil {
			t.Fatalf("request %d while full: %v (want 429)", i, err)
		}
		e := clientsdk.ErrorFromMsg(resp)
		if e == nil || e.Code != 429 {
			t.Fatalf("request %d while full: %q %+v: want 429", i, resp.Data, e)
		}
		// With the direct host answering, the first was passed on and
		// found nobody: its 429 says so.
		if passed := strings.Contains(e.Message, "on every node that hosts it"); i == 0 && passed != fakeHost {
			t.Fatalf("request 0: %q: passed on %v, want %v", e.Message, passed, fakeHost)
		}
	}
	for range 3 {
		m, err := slow.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := clientsdk.ErrorFromMsg(m); e != nil {
			t.Fatalf("a slow request: %v", e)
		}
	}
}
