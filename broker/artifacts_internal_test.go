package broker

import (
	"context"
	"io"
	"testing"
	"time"
)

// A read that stops making progress is stopped after the stall time (its
// reader closed: a blocked Read returns); one that keeps making progress is
// not.
func TestStallWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := make(chan struct{}, 1)
	pr, pw := io.Pipe()
	go stallWatch(ctx, func() { cancel(); _ = pr.Close() }, progress, 100*time.Millisecond)
	r := progressReader{r: pr, progress: progress}
	go func() {
		for range 5 { // bytes every 50 ms: progress
			_, _ = pw.Write([]byte("x"))
			time.Sleep(50 * time.Millisecond)
		}
		// then silence
	}()
	buf := make([]byte, 1)
	for range 5 {
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("cancelled while bytes kept coming")
	}
	// The next Read blocks (no writer): the stall must unblock it.
	if _, err := r.Read(buf); err == nil {
		t.Fatal("a stalled read returned data")
	}
	if ctx.Err() == nil {
		t.Fatal("not cancelled after the reader stalled")
	}
	_ = pw.Close()
}
