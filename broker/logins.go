package broker

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// loginResult is the outcome of one password login.
type loginResult int

const (
	loginOK      loginResult = iota
	loginWrong               // the password was checked and is wrong (or the user does not exist)
	loginLimited             // refused by the limiter, without a password check
	loginBusy                // no bcrypt slot within MaxWait (or the caller gave up)
)

// loginOutcome is a loginResult with, when refused without a check, the
// time after which trying again makes sense.
type loginOutcome struct {
	result     loginResult
	retryAfter time.Duration
}

// loginGuard checks user names and passwords for NATS and HTTP: a verified
// pair is answered from the cache at once; otherwise the limiter decides
// whether the check may run, and the bcrypt gate bounds how many run at once.
// It also throttles the log lines of refusals.
type loginGuard struct {
	passwords *Passwords
	lim       loginLimits
	gate      *bcryptGate
	logger    *slog.Logger
	now       func() time.Time

	mu      sync.Mutex // guards limiter and logs
	limiter *loginLimiter
	logs    *logThrottle

	limited atomic.Int64 // attempts refused by the limiter (tests, benchmarks)
}

func newLoginGuard(p *Passwords, lim loginLimits, logger *slog.Logger) *loginGuard {
	return &loginGuard{
		passwords: p, lim: lim, gate: newBcryptGate(lim.Concurrent), logger: logger, now: time.Now,
		limiter: newLoginLimiter(lim), logs: newLogThrottle(10 * time.Second),
	}
}

// check verifies password for user, presented from source (a sourceKey).
func (g *loginGuard) check(ctx context.Context, source, user, password string) loginOutcome {
	if c := g.passwords.lookup(user, password); c.cached {
		return loginOutcome{result: loginOK}
	} else if g.lim.Off {
		if g.passwords.compare(c, password) {
			return loginOutcome{result: loginOK}
		}
		return loginOutcome{result: loginWrong}
	}
	if len(user) > 64 {
		user = user[:64] // no valid name is longer; bounds the limiter's memory
	}
	g.mu.Lock()
	d := g.limiter.decide(g.now(), source, user)
	g.mu.Unlock()
	if !d.Allowed {
		g.limited.Add(1)
		return loginOutcome{result: loginLimited, retryAfter: d.RetryAfter}
	}
	wctx, cancel := context.WithTimeout(ctx, g.lim.MaxWait)
	defer cancel()
	if g.gate.acquire(wctx, d.Priority) != nil {
		g.refund(source, user, d) // never checked: not a failure
		return loginOutcome{result: loginBusy, retryAfter: time.Second}
	}
	// Looked up again: the file may have changed while this waited.
	c := g.passwords.lookup(user, password)
	ok := c.cached || g.passwords.compare(c, password)
	g.gate.release()
	if ok {
		g.refund(source, user, d)
		return loginOutcome{result: loginOK}
	}
	return loginOutcome{result: loginWrong}
}

func (g *loginGuard) refund(source, user string, d loginDecision) {
	g.mu.Lock()
	g.limiter.succeeded(g.now(), source, user, d)
	g.mu.Unlock()
}

// warn logs a refusal, at most one line of each kind per 10 s; the line
// says how many of that kind were held back before it.
func (g *loginGuard) warn(kind, msg string, args ...any) {
	g.mu.Lock()
	ok, held := g.logs.allow(g.now(), kind)
	g.mu.Unlock()
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "similar_not_logged", held)
	}
	g.logger.Warn(msg, args...)
}

// bcryptGate bounds the bcrypt checks that run at once, so that a flood of
// logins cannot take every core from serving. Waiters with priority (from
// addresses with no recent failure) are served first, newest first: a flood
// from many addresses starts with a burst of first attempts, all of them
// "fresh", and a legitimate login that arrives behind the burst must not
// wait for all of it. The other waiters are served in arrival order.
type bcryptGate struct {
	mu      sync.Mutex
	free    int
	waiters [2][]chan struct{} // [0]: priority, [1]: the others
}

func newBcryptGate(n int) *bcryptGate { return &bcryptGate{free: max(1, n)} }

// acquire waits for a slot until ctx ends (returning its error).
func (g *bcryptGate) acquire(ctx context.Context, priority bool) error {
	q := 1
	if priority {
		q = 0
	}
	g.mu.Lock()
	if g.free > 0 && len(g.waiters[0]) == 0 && len(g.waiters[1]) == 0 {
		g.free--
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	g.waiters[q] = append(g.waiters[q], ch)
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	for i, w := range g.waiters[q] {
		if w == ch {
			g.waiters[q] = append(g.waiters[q][:i], g.waiters[q][i+1:]...)
			g.mu.Unlock()
			return ctx.Err()
		}
	}
	g.mu.Unlock()
	// release handed us the slot as ctx ended: pass it on.
	g.release()
	return ctx.Err()
}

// release frees a slot: to the newest priority waiter, else the oldest other.
func (g *bcryptGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := len(g.waiters[0]); n > 0 {
		close(g.waiters[0][n-1])
		g.waiters[0] = g.waiters[0][:n-1]
		return
	}
	if len(g.waiters[1]) > 0 {
		close(g.waiters[1][0])
		g.waiters[1] = g.waiters[1][1:]
		return
	}
	g.free++
}
