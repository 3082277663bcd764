package loglimit

import (
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l := New(1000, 3000)
	for i := range 3 {
		if ok, note := l.Allow(999, t0); !ok || note != "" {
			t.Fatalf("line %d of the burst: %v %q", i, ok, note)
		}
	}
	if ok, _ := l.Allow(10, t0); ok {
		t.Fatal("a line past the burst was allowed")
	}
	if ok, _ := l.Allow(10, t0.Add(5*time.Millisecond)); ok {
		t.Fatal("a line was allowed before the bucket refilled")
	}
	ok, note := l.Allow(10, t0.Add(time.Second))
	if !ok || !strings.Contains(note, "dropped 2 lines (22 bytes)") {
		t.Fatalf("after a second: %v %q", ok, note)
	}
	if ok, note := l.Allow(10, t0.Add(time.Second)); !ok || note != "" {
		t.Fatalf("the note is given once: %v %q", ok, note)
	}
}

func TestEvery(t *testing.T) {
	var e Every
	t0 := time.Unix(1000, 0)
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {time.Second, false}, {9 * time.Second, false}, {10 * time.Second, true}, {11 * time.Second, false}, {20 * time.Second, true}} {
		if got := e.Allow(t0.Add(c.at), 10*time.Second); got != c.want {
			t.Errorf("Allow at +%s = %v, want %v", c.at, got, c.want)
		}
	}
}
