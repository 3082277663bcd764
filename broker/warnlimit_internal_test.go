package broker

import (
	"strconv"
	"testing"
	"time"
)

func TestWarnLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var l warnLimiter
	steps := []struct {
		key     string
		at      time.Duration
		ok      bool
		skipped int
	}{
		{"fail a", 0, true, 0},
		{"fail a", time.Second, false, 0},
		{"fail a", 2 * time.Second, false, 0},
		{"fail b", 2 * time.Second, true, 0}, // another app or message: its own budget
		{"fail a", warnEvery - 1, false, 0},
		{"fail a", warnEvery, true, 3}, // the next line says what was left out
		{"fail a", warnEvery + time.Second, false, 0},
		{"fail a", 3 * warnEvery, true, 1},
	}
	for i, s := range steps {
		ok, skipped := l.allow(s.key, t0.Add(s.at))
		if ok != s.ok || skipped != s.skipped {
			t.Fatalf("step %d (%s at %s): allow = %v, %d; want %v, %d", i, s.key, s.at, ok, skipped, s.ok, s.skipped)
		}
	}
	for i := range maxWarnKeys + 10 { // bounded: many apps start over
		l.allow("k"+strconv.Itoa(i), t0)
	}
	if n := len(l.last); n > maxWarnKeys {
		t.Fatalf("%d kinds remembered, want at most %d", n, maxWarnKeys)
	}
}
