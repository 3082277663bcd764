package broker

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// step is one login attempt in a limiter table: at an offset from t0, from
// a source for a user; right says whether the password then turns out right
// (the attempt is refunded). want* is the decision.
type step struct {
	at           time.Duration
	source, user string
	right        bool
	allowed      bool
	retry        time.Duration
	priority     bool
}

func TestLoginLimiter(t *testing.T) {
	// Small budgets keep the tables short: 3 per source, 4 per user, 1 s.
	lim := loginLimits{PerSource: rate{3, time.Second}, PerUser: rate{4, time.Second}, MaxKeys: 100}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		steps []step
	}{
		{"a source's burst, then one a second; a refusal does not extend the wait", []step{
			{0, "A", "u1", false, true, 0, true},
			{0, "A", "u2", false, true, 0, false},
			{0, "A", "u3", false, true, 0, false},
			{0, "A", "u4", false, false, time.Second, false},
			{500 * time.Millisecond, "A", "u4", false, false, 500 * time.Millisecond, false},
			{time.Second, "A", "u4", false, true, 0, false},
			{time.Second, "A", "u5", false, false, time.Second, false},
			// Another address is not affected.
			{time.Second, "B", "u5", false, true, 0, true},
		}},
		{"right passwords cost nothing", []step{
			{0, "A", "alice", true, true, 0, true},
			{0, "A", "alice", true, true, 0, true},
			{0, "A", "alice", true, true, 0, true},
			{0, "A", "alice", true, true, 0, true},
			{0, "A", "alice", true, true, 0, true},
			{0, "A", "alice", false, true, 0, true},
			{0, "A", "alice", true, true, 0, false},
		}},
		{"a flooded user: each address gets its first try, a fresh address gets through", []step{
			{0, "S1", "alice", false, true, 0, true},
			{0, "S2", "alice", false, true, 0, true},
			{0, "S3", "alice", false, true, 0, true},
			{0, "S4", "alice", false, true, 0, true},
			// alice's budget is used up; S1 has failed before.
			{0, "S1", "alice", false, false, time.Second, false},
			// A fresh address: allowed, first in line, not charged to alice.
			{0, "S5", "alice", true, true, 0, true},
			{0, "S6", "alice", false, true, 0, true},
			{0, "S6", "alice", false, false, time.Second, false},
			// S1 may try other names (within its own budget).
			{0, "S1", "bob", false, true, 0, false},
			// Half a second later S1 is still not fresh and alice still full.
			{500 * time.Millisecond, "S1", "alice", false, false, 500 * time.Millisecond, false},
			// After a second alice has one attempt again.
			{time.Second, "S2", "alice", false, true, 0, true},
			{time.Second, "S3", "alice", false, true, 0, true},
		}},
		{"unknown and known names are limited alike (the limiter does not know which exist)", []step{
			{0, "A", "nobody-1", false, true, 0, true},
			{0, "A", "alice", false, true, 0, false},
			{0, "A", "nobody-2", false, true, 0, false},
			{0, "A", "alice", false, false, time.Second, false},
			{0, "A", "nobody-3", false, false, time.Second, false},
		}},
		{"the retry-after of a flooded user is the sooner of user budget and fresh address", []step{
			{0, "S1", "alice", false, true, 0, true},
			{0, "S1", "alice", false, true, 0, false},
			{0, "S1", "alice", false, true, 0, false},
			{0, "S2", "alice", false, true, 0, true},
			// alice full until +1s; S2 fresh again at +1s; S1 at +3s.
			{0, "S2", "alice", false, false, time.Second, false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLoginLimiter(lim)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				d := l.decide(now, s.source, s.user)
				if d.Allowed != s.allowed || d.RetryAfter != s.retry || d.Priority != s.priority {
					t.Fatalf("step %d (%+v): got allowed %v retry %v priority %v", i, s, d.Allowed, d.RetryAfter, d.Priority)
				}
				if d.Allowed && s.right {
					l.succeeded(now, s.source, s.user, d)
				}
			}
		})
	}
}

// The tables hold at most MaxKeys keys: full buckets are forgotten first,
// then the one closest to full.
func TestLoginLimiterEviction(t *testing.T) {
	l := newLoginLimiter(loginLimits{PerSource: rate{2, time.Second}, PerUser: rate{100, time.Second}, MaxKeys: 2})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l.decide(t0, "A", "u")
	l.decide(t0, "A", "u") // A: full again at +2s
	l.decide(t0, "B", "u") // B: at +1s
	if d := l.decide(t0, "C", "u"); !d.Allowed || len(l.sources.tat) != 2 {
		t.Fatalf("C: %+v, %d keys", d, len(l.sources.tat))
	}
	if _, found := l.sources.tat["B"]; found {
		t.Error("B, closest to full, was kept; A was evicted")
	}
	if d := l.decide(t0, "A", "u"); d.Allowed {
		t.Error("A, the most limited, was forgotten")
	}
	// At +3s every bucket is full again: all are forgotten to make room.
	l.decide(t0.Add(3*time.Second), "D", "u")
	if len(l.sources.tat) != 1 {
		t.Errorf("%d keys after the others went full, want 1", len(l.sources.tat))
	}
}

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"::ffff:203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"::1", "::/64"},
		{"", "unknown"},
	} {
		a, _ := netip.ParseAddr(tc.addr)
		if got := sourceKey(a); got != tc.want {
			t.Errorf("sourceKey(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got := sourceKeyOf(&net.TCPAddr{IP: net.ParseIP("127.0.0.7"), Port: 5}); got != "127.0.0.7" {
		t.Errorf("sourceKeyOf(127.0.0.7:5) = %q", got)
	}
	if got := sourceKeyOf(nil); got != "in-process" {
		t.Errorf("sourceKeyOf(nil) = %q", got)
	}
}

func TestLogThrottle(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	lt := newLogThrottle(10 * time.Second)
	for i, s := range []struct {
		at         time.Duration
		kind       string
		ok         bool
		suppressed int
	}{
		{0, "a", true, 0},
		{time.Second, "a", false, 0},
		{2 * time.Second, "a", false, 0},
		{2 * time.Second, "b", true, 0},
		{9 * time.Second, "a", false, 0},
		{10 * time.Second, "a", true, 3},
		{30 * time.Second, "a", true, 0},
	} {
		ok, n := lt.allow(t0.Add(s.at), s.kind)
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d (%+v): ok %v suppressed %d", i, s, ok, n)
		}
	}
}

// Fresh addresses get a flooded user only FreshPerUser more attempts: a
// flood from ever new addresses (any of 127.0.0.0/8, or X-Forwarded-For
// values written by a local client) cannot guess at bcrypt speed.
func TestLoginLimiterFreshAddressesAreBounded(t *testing.T) {
	l := newLoginLimiter(loginLimits{PerSource: rate{3, time.Second}, PerUser: rate{2, time.Second}, FreshPerUser: rate{2, 10 * time.Second}, MaxKeys: 100})
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	allowed := 0
	for i := range 50 { // 50 addresses, one try each, all at once
		if l.decide(t0, fmt.Sprintf("10.0.0.%d", i), "alice").Allowed {
			allowed++
		}
	}
	if allowed != 4 {
		t.Fatalf("%d of 50 fresh addresses got to try alice's password, want 2 (her budget) + 2 (fresh)", allowed)
	}
	if d := l.decide(t0.Add(time.Second), "10.0.1.1", "alice"); !d.Allowed {
		t.Fatalf("a second later alice's own budget allows one more: %+v", d)
	}
}
