package loglimit

import (
	"sync/atomic"
	"time"
)

// Every lets a repeated log line through at most once per period: the
// first, then one per period. The zero value is ready; safe for
// concurrent use.
type Every struct {
	last atomic.Int64 // unix nanos of the last line let through
}

// Allow reports whether a line may be logged at now, period after the last.
func (e *Every) Allow(now time.Time, period time.Duration) bool {
	n := now.UnixNano()
	last := e.last.Load()
	return (last == 0 || n-last >= int64(period)) && e.last.CompareAndSwap(last, n)
}
