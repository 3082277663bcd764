package lambdas_test

import (
	"context"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// A node that closes while a request it passed on still waits for its
// answer answers that caller too (503 once Close's grace is over), as it
// answers those waiting or running on it: the node's connection is closed
// after Close, so an answer coming later could not be relayed, and the
// caller would be left to its own timeout.
func TestOverflowRelayAnsweredAtClose(t *testing.T) {
	r := newRig(t)
	r.deployNative("closing", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 1 })
	r.mustInvoke("closing", "warm")
	fakeDirectHost(t, r, "closing")
	// Another member that takes the passed-on request and never answers: a
	// plain subscriber gets every request, and keeps the passed-on one.
	passed := make(chan *nats.Msg, 4)
	other, err := r.client.Subscribe(clientsdk.LambdaSubject("closing"), func(m *nats.Msg) {
		if m.Header.Get(clientsdk.HeaderPassedOn) != "" {
			passed <- m
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Unsubscribe() }()
	answers := r.sendInOrder("closing", 3, `{"sleep_ms":3000}`) // running, queued, passed on
	select {
	case <-passed:
	case <-time.After(10 * time.Second):
		t.Fatal("no request was passed on")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = r.m.Close(ctx)
	r.nc.Close() // as the node does once its lambda host is closed
	codes := map[int]int{}
	for range 3 {
		m, err := answers.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("answers %v, then: %v", codes, err)
		}
		code := 200
		if e := clientsdk.ErrorFromMsg(m); e != nil {
			code = e.Code
		}
		codes[code]++
	}
	if codes[503] != 3 {
		t.Fatalf("answers %v: want 3 × 503 (running, queued, passed on)", codes)
	}
}
