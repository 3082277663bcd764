package runner

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// A read that stops making progress is given up, and the abandoned copy
// writes nothing more into the destination, even when bytes come later.
func TestCopyUnstalledGivesUpOnAStall(t *testing.T) {
	pr, pw := io.Pipe()
	go func() { _, _ = pw.Write([]byte("first ")) }()
	var dst bytes.Buffer
	start := time.Now()
	n, err := copyUnstalled(&dst, pr, 100*time.Millisecond)
	if err == nil || n != 0 || !strings.Contains(err.Error(), "no data for 100ms") {
		t.Fatalf("copy of a stalled reader: %d, %v", n, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("gave up after %s", took)
	}
	got := dst.String()
	_, _ = pw.Write([]byte("late")) // the abandoned copy reads it, and drops it
	_ = pw.Close()
	if dst.String() != got || got != "first " {
		t.Fatalf("destination %q, then %q after the stall", got, dst.String())
	}
}

// A slow but steady read is not a stall.
func TestCopyUnstalledSlowIsFine(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		for i := range 5 {
			time.Sleep(40 * time.Millisecond)
			_, _ = pw.Write([]byte{byte('a' + i)})
		}
		_ = pw.Close()
	}()
	var dst bytes.Buffer
	n, err := copyUnstalled(&dst, pr, 150*time.Millisecond)
	if err != nil || n != 5 || dst.String() != "abcde" {
		t.Fatalf("copy: %d %q %v", n, dst.String(), err)
	}
}
