package broker

import (
	"sync"
	"time"
)

// warnEvery is the most often the gateway logs one kind of failed request
// for one app: a client hammering a lambda that fails, or an app that is
// down, must not turn each request into a log line.
const warnEvery = 10 * time.Second

// maxWarnKeys bounds the kinds of warning remembered (message and app).
const maxWarnKeys = 4096

// warnLimiter decides which warnings of the gateway are logged: the first
// of a kind, then at most one per warnEvery, saying how many were left out
// since.
type warnLimiter struct {
	mu   sync.Mutex
	last map[string]warnSeen
}

// warnSeen is a kind of warning's last line and what was left out since.
type warnSeen struct {
	at      time.Time
	skipped int
}

// allow reports whether the warning of kind key is logged at now, and how
// many of that kind were left out since the last one logged.
func (l *warnLimiter) allow(key string, now time.Time) (ok bool, skipped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, seen := l.last[key]
	if seen && now.Sub(s.at) < warnEvery {
		s.skipped++
		l.last[key] = s
		return false, 0
	}
	if l.last == nil || (!seen && len(l.last) >= maxWarnKeys) {
		l.last = map[string]warnSeen{}
	}
	l.last[key] = warnSeen{at: now}
	return true, s.skipped
}
