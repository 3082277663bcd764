package broker

import (
	"net"
	"net/netip"
	"runtime"
	"time"
)

// rate is a budget of attempts: Burst at once, then one more every Every.
type rate struct {
	Burst int
	Every time.Duration
}

// loginLimits bound the password checks (bcrypt) that clients can cause.
type loginLimits struct {
	// PerSource limits the attempts from one client address (an IPv6 /64).
	PerSource rate
	// PerUser limits the attempts for one user name, known or not; over it,
	// only addresses with no recent failure may still try, and only
	// FreshPerUser of them.
	PerUser rate
	// FreshPerUser bounds the attempts from fresh addresses for a user over
	// its PerUser budget: a flood from ever new addresses (a local user can
	// bind any of 127.0.0.0/8, or write X-Forwarded-For) gets no more.
	FreshPerUser rate
	// MaxKeys bounds the addresses and the user names remembered (each).
	MaxKeys int
	// Concurrent is the number of bcrypt checks that may run at once.
	Concurrent int
	// MaxWait is the longest an attempt waits for a bcrypt slot.
	MaxWait time.Duration
	// Off checks every password at once, with no limit: dartup's behaviour
	// before the limiter, kept as the baseline of the benchmarks.
	Off bool
}

// defaultLoginLimits: ten failures per address or user name, then one every
// six seconds; bcrypt on at most half the cores, so that the rest serve.
func defaultLoginLimits() loginLimits {
	return loginLimits{
		PerSource:    rate{Burst: 10, Every: 6 * time.Second},
		PerUser:      rate{Burst: 10, Every: 6 * time.Second},
		FreshPerUser: rate{Burst: 10, Every: time.Minute},
		MaxKeys:      10000,
		Concurrent:   max(1, runtime.GOMAXPROCS(0)/2),
		MaxWait:      10 * time.Second,
	}
}

// loginDecision is the limiter's answer for one login attempt.
type loginDecision struct {
	// Allowed: the password may be checked.
	Allowed bool
	// RetryAfter, when not allowed, is how long until an attempt from this
	// address for this user would be.
	RetryAfter time.Duration
	// Priority: the address had no recent failed attempt; its check goes
	// ahead of those from addresses that have (a flood waits behind a
	// fresh login, not the other way round).
	Priority bool
	// chargedUser: the attempt counts against the user's budget too.
	chargedUser bool
}

// loginLimiter decides, from a clock passed in, whether a password check
// may run. Each attempt is charged when it is allowed (so that many attempts
// at once cannot all pass before the first fails) and refunded when the
// password was right: only failures use the budgets. It does not know which
// users exist, so known and unknown names are limited alike. It is not safe
// for concurrent use.
type loginLimiter struct {
	sources gcraTable
	users   gcraTable
	fresh   gcraTable // per user: attempts let in over its budget because their address was fresh
}

func newLoginLimiter(l loginLimits) *loginLimiter {
	if l.FreshPerUser == (rate{}) {
		l.FreshPerUser = defaultLoginLimits().FreshPerUser
	}
	return &loginLimiter{
		sources: gcraTable{r: l.PerSource, max: l.MaxKeys, tat: map[string]time.Time{}},
		users:   gcraTable{r: l.PerUser, max: l.MaxKeys, tat: map[string]time.Time{}},
		fresh:   gcraTable{r: l.FreshPerUser, max: l.MaxKeys, tat: map[string]time.Time{}},
	}
}

// decide answers an attempt from source for user at now, and charges it
// when it is allowed. Over the source's budget: denied. Over the user's
// budget: denied, unless the source has no recent failure (a legitimate user
// logging in from a fresh address gets through while the name is flooded;
// each flooding address gets one try, then it is not fresh any more).
func (l *loginLimiter) decide(now time.Time, source, user string) loginDecision {
	src, srcOK, srcRetry := l.sources.next(now, source)
	if !srcOK {
		return loginDecision{RetryAfter: srcRetry}
	}
	fresh := l.sources.clean(now, source)
	usr, usrOK, usrRetry := l.users.next(now, user)
	if !usrOK && !fresh {
		// Allowed again once the user has budget, or this address is fresh.
		return loginDecision{RetryAfter: min(usrRetry, l.sources.tat[source].Sub(now))}
	}
	if !usrOK {
		fr, frOK, frRetry := l.fresh.next(now, user)
		if !frOK {
			return loginDecision{RetryAfter: min(usrRetry, frRetry)}
		}
		l.fresh.set(now, user, fr)
	}
	l.sources.set(now, source, src)
	if usrOK {
		l.users.set(now, user, usr)
	}
	return loginDecision{Allowed: true, Priority: fresh, chargedUser: usrOK}
}

// succeeded refunds an allowed attempt whose password was right (or that
// was never checked).
func (l *loginLimiter) succeeded(now time.Time, source, user string, d loginDecision) {
	l.sources.refund(now, source)
	if d.chargedUser {
		l.users.refund(now, user)
	}
}

// gcraTable is a set of GCRA buckets (generic cell rate algorithm): per key,
// tat is the time at which its budget is full again; a key without an entry,
// or with tat not after now, has its whole budget.
type gcraTable struct {
	r   rate
	max int
	tat map[string]time.Time
}

// next returns key's tat after one more attempt at now, whether that attempt
// fits the budget, and if not, how long until it would.
func (t *gcraTable) next(now time.Time, key string) (tat time.Time, ok bool, retry time.Duration) {
	base := now
	if v, found := t.tat[key]; found && v.After(now) {
		base = v
	}
	tat = base.Add(t.r.Every)
	limit := now.Add(time.Duration(t.r.Burst) * t.r.Every)
	if tat.After(limit) {
		return tat, false, tat.Sub(limit)
	}
	return tat, true, 0
}

// clean reports whether key has its whole budget (no recent attempt).
func (t *gcraTable) clean(now time.Time, key string) bool {
	v, found := t.tat[key]
	return !found || !v.After(now)
}

func (t *gcraTable) set(now time.Time, key string, tat time.Time) {
	if _, found := t.tat[key]; !found && len(t.tat) >= t.max {
		t.evict(now)
	}
	t.tat[key] = tat
}

// refund gives one attempt back to key.
func (t *gcraTable) refund(now time.Time, key string) {
	v, found := t.tat[key]
	if !found {
		return
	}
	if v = v.Add(-t.r.Every); v.After(now) {
		t.tat[key] = v
	} else {
		delete(t.tat, key)
	}
}

// evict makes room for a key: it forgets the keys whose budget is full
// again, or if none is, the one closest to full (which loses the least).
func (t *gcraTable) evict(now time.Time) {
	var oldest string
	var oldestTat time.Time
	for k, v := range t.tat {
		if !v.After(now) {
			delete(t.tat, k)
		} else if oldest == "" || v.Before(oldestTat) {
			oldest, oldestTat = k, v
		}
	}
	if len(t.tat) >= t.max {
		delete(t.tat, oldest)
	}
}

// sourceKey is the limiter's key for a client address: the address, or its
// /64 for IPv6 (one host usually has a whole /64); "unknown" when invalid.
func sourceKey(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is6():
		p, _ := a.Prefix(64)
		return p.String()
	default:
		return a.String()
	}
}

// sourceKeyOf is sourceKey for a NATS client's remote address; an
// in-process connection (nil) is "in-process".
func sourceKeyOf(a net.Addr) string {
	if a == nil {
		return "in-process"
	}
	if t, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(t.IP)
		return sourceKey(ip)
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return sourceKey(ap.Addr())
}

// logThrottle lets through one log line per kind per interval and counts
// the lines it held back, so that a flood of refusals is never a flood of
// log lines. It is not safe for concurrent use.
type logThrottle struct {
	every      time.Duration
	last       map[string]time.Time
	suppressed map[string]int
}

func newLogThrottle(every time.Duration) *logThrottle {
	return &logThrottle{every: every, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// allow reports whether a line of kind may be logged at now, and how many
// were held back since the last one that was.
func (t *logThrottle) allow(now time.Time, kind string) (ok bool, suppressed int) {
	if last, found := t.last[kind]; found && now.Sub(last) < t.every {
		t.suppressed[kind]++
		return false, 0
	}
	n := t.suppressed[kind]
	t.last[kind], t.suppressed[kind] = now, 0
	return true, n
}
