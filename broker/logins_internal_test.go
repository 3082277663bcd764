package broker

import (
	"context"
	"testing"
	"time"
)

// queued waits until the gate has n waiters.
func queued(t *testing.T, g *bcryptGate, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		got := len(g.waiters[0]) + len(g.waiters[1])
		g.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// The gate serves priority waiters first, newest first, then the others in
// arrival order; a waiter that gives up leaves no slot lost.
func TestBcryptGate(t *testing.T) {
	g := newBcryptGate(1)
	ctx := context.Background()
	if err := g.acquire(ctx, false); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 5)
	start := func(name string, prio bool) {
		go func() {
			if err := g.acquire(ctx, prio); err == nil {
				order <- name
			}
		}()
	}
	start("flood-1", false)
	queued(t, g, 1)
	start("flood-2", false)
	queued(t, g, 2)
	start("fresh-1", true)
	queued(t, g, 3)
	start("fresh-2", true)
	queued(t, g, 4)
	gone, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- g.acquire(gone, true) }()
	queued(t, g, 5)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a cancelled waiter got a slot")
	}
	for _, want := range []string{"fresh-2", "fresh-1", "flood-1", "flood-2"} {
		g.release()
		if got := <-order; got != want {
			t.Fatalf("slot went to %s, want %s", got, want)
		}
	}
	g.release()
	if g.free != 1 {
		t.Errorf("%d free slots at the end, want 1", g.free)
	}
}
