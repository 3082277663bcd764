// Package loglimit bounds how much output one worker may put into the logs
// stream, so that one app printing without pause cannot push every other
// app's lines out of the stream (its size is bounded) or flood the server.
package loglimit

import (
	"fmt"
	"sync"
	"time"
)

// Defaults: a worker may write DefaultRate bytes a second on average, in
// bursts of up to DefaultBurst.
const (
	DefaultRate  = 256 << 10
	DefaultBurst = 4 << 20
)

// Limiter is a token bucket of bytes for one worker's output. Its methods
// are safe for concurrent use (stdout and stderr share one).
type Limiter struct {
	mu           sync.Mutex
	rate, burst  float64
	tokens       float64
	last         time.Time
	droppedLines int
	droppedBytes int
}

// New returns a full bucket of burst bytes, refilled at rate bytes a second.
func New(rate, burst int) *Limiter {
	return &Limiter{rate: float64(rate), burst: float64(burst), tokens: float64(burst)}
}

// Allow reports whether a line of n bytes may be logged at now. When lines
// were dropped before it and it may be logged, note says how many (print it
// first); otherwise note is "".
func (l *Limiter) Allow(n int, now time.Time) (ok bool, note string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	cost := float64(n + 1)
	if l.tokens < cost {
		l.droppedLines++
		l.droppedBytes += n + 1
		return false, ""
	}
	l.tokens -= cost
	if l.droppedLines > 0 {
		note = fmt.Sprintf("-- dartup dropped %d lines (%d bytes) of this output: more than %d KiB/s --",
			l.droppedLines, l.droppedBytes, int(l.rate)>>10)
		l.droppedLines, l.droppedBytes = 0, 0
	}
	return true, note
}
