package broker

import (
	"context"
	"io"
	"testing"
	"time"
)

// A read that stops making progress is cancelled after the stall time; one
// that keeps making progress is not.
func TestStallWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := make(chan struct{}, 1)
	go stallWatch(ctx, cancel, progress, 100*time.Millisecond)
	pr, pw := io.Pipe()
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
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("not cancelled after the reader stalled")
	}
	_ = pw.Close()
}
