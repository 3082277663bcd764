package broker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

// BenchmarkServeColdStart measures what `dartup serve` spends between being
// started and being ready: broker.Start on a fresh, empty data dir (embedded
// NATS on a free loopback port, JetStream on the file store, every asset
// created, the control API and the HTTP gateway up). Shutdown is not timed.
// It reports the median and the 90th percentile; the aim is a median under
// 300 ms. Run it with:
//
//	go test -run '^$' -bench BenchmarkServeColdStart -benchtime 30x ./broker/
func BenchmarkServeColdStart(b *testing.B) {
	var times []time.Duration
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		t0 := time.Now()
		br, err := broker.Start(context.Background(), broker.Config{DataDir: dir, NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if !br.Ready() {
			b.Fatal("Start returned a broker that is not ready")
		}
		times = append(times, d)
		_ = br.Shutdown(context.Background())
		b.StartTimer()
	}
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(times[len(times)/2]), "ms-median")
	b.ReportMetric(ms(times[len(times)*9/10]), "ms-p90")
}

// loginLatencies are what a legitimate user sees in one scenario.
type loginLatencies struct {
	http   []time.Duration // authenticated requests, credentials already verified
	fresh  []time.Duration // NATS logins whose password is checked with bcrypt
	flood  int64           // flood attempts made meanwhile
	bcr    int64           // bcrypt checks the broker ran meanwhile
	took   time.Duration   // the measurements' wall time
	failed int             // fresh logins that failed
}

// BenchmarkLoginFlood measures what a flood of wrong passwords does to
// legitimate users, before the login limiter (broker.WithoutLoginLimits:
// every password checked at once, as dartup did) and after it, each quiet
// and under a flood, all in one run:
//
//   - p50 and p90 of an authenticated HTTP request whose credentials are
//     already verified (the cache): 50 requests, one every 100 ms;
//   - p50 and max of a fresh NATS login (user and password not verified
//     yet, from an address with no failures): 5 logins, one a second, and
//     how many of them failed (counted with the time they took to fail).
//
// The flood: 50 clients, each from its own loopback address, 25 over HTTP
// and 25 over NATS, half for a real user and half for made-up names, each
// trying a wrong password 4 times a second (200/s offered; bcrypt at cost
// 10 manages about 40/s on 2 cores). The hashes have the production cost.
// The "-x" metrics are ratios against the quiet run before the change,
// measured in the same run. Run it with:
//
//	go test -run '^$' -bench BenchmarkLoginFlood -benchtime 1x ./broker/
func BenchmarkLoginFlood(b *testing.B) {
	users := []string{"alice", "bob", "u0", "u1", "u2", "u3", "u4"}
	var file strings.Builder
	for _, u := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), broker.BcryptCost)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&file, "%s:%s\n", u, h)
	}
	type scenario struct {
		name         string
		guard, flood bool
	}
	scenarios := []scenario{{"before-quiet", false, false}, {"before-flood", false, true}, {"after-quiet", true, false}, {"after-flood", true, true}}
	res := map[string]loginLatencies{}
	for b.Loop() {
		for _, s := range scenarios {
			res[s.name] = loginScenario(b, file.String(), s.guard, s.flood)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(ds []time.Duration, p int) time.Duration {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[min(len(ds)-1, len(ds)*p/100)]
	}
	base := res["before-quiet"]
	for _, s := range scenarios {
		r := res[s.name]
		b.ReportMetric(ms(pct(r.http, 50)), s.name+"-http-p50-ms")
		b.ReportMetric(ms(pct(r.http, 90)), s.name+"-http-p90-ms")
		b.ReportMetric(ms(pct(r.fresh, 50)), s.name+"-login-p50-ms")
		b.ReportMetric(ms(pct(r.fresh, 100)), s.name+"-login-max-ms")
		b.ReportMetric(float64(r.failed), s.name+"-login-failed")
		b.ReportMetric(float64(pct(r.http, 90))/float64(pct(base.http, 90)), s.name+"-http-p90-x")
		b.ReportMetric(float64(pct(r.fresh, 50))/float64(pct(base.fresh, 50)), s.name+"-login-p50-x")
		b.Logf("%s: %d flood attempts, %d bcrypt checks, %s", s.name, r.flood, r.bcr, r.took.Round(time.Millisecond))
	}
}

// loginScenario starts a broker on a password file, optionally floods it,
// and measures a legitimate user's requests and fresh logins.
func loginScenario(b *testing.B, passwords string, guard, flooding bool) loginLatencies {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, broker.PasswordFileName), []byte(passwords), 0o600); err != nil {
		b.Fatal(err)
	}
	opts := []func(*broker.Config){func(c *broker.Config) { c.DataDir, c.RequirePassword = dir, true }}
	if !guard {
		opts = append(opts, broker.WithoutLoginLimits())
	}
	br := testutil.StartBroker(b, opts...)
	defer br.Shutdown(context.Background())
	url := br.HTTPURL() + "/x"
	legit := httpFrom("127.0.0.2")
	if code, _, err := basicGet(legit, url, "bob", "bob-pw"); err != nil || code != 404 {
		b.Fatalf("bob: %d %v", code, err)
	}
	var out loginLatencies
	var attempts atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if flooding {
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pacedFlooder(br, i, stop, &attempts)
			}()
		}
		testutil.WaitFor(b, 60*time.Second, "the flood to start", func() bool { return attempts.Load() >= 100 })
	}
	bcr0, start := br.BcryptChecks(), time.Now()
	// The user: a request every 100 ms, a fresh login every second (at
	// least 5 s, so that the flood's first seconds, when every address
	// still has its burst, and the steady flood after them are both in).
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := range 50 {
		<-tick.C
		if i%10 == 9 {
			d, ok := freshLogin(b, br, i/10)
			out.fresh = append(out.fresh, d)
			if !ok {
				out.failed++
			}
		}
		t0 := time.Now()
		if code, _, err := basicGet(legit, url, "bob", "bob-pw"); err != nil || code != 404 {
			b.Fatalf("bob: %d %v", code, err)
		}
		out.http = append(out.http, time.Since(t0))
	}
	out.bcr, out.took = br.BcryptChecks()-bcr0, time.Since(start)
	close(stop)
	wg.Wait()
	out.flood = attempts.Load()
	return out
}

// freshLogin times a NATS login as uK from an address of its own. A login
// that fails counts with the time it took to fail: without the limiter, a
// flood can starve the server past its 2 s auth timeout before it reads
// the client's CONNECT ("Authentication Timeout").
func freshLogin(b *testing.B, br *broker.Broker, k int) (time.Duration, bool) {
	t0 := time.Now()
	nc, err := nats.Connect(br.NATSURL(), nats.UserInfo(fmt.Sprintf("u%d", k), fmt.Sprintf("u%d-pw", k)),
		nats.SetCustomDialer(dialerFrom(fmt.Sprintf("127.0.0.%d", 10+k))), nats.Timeout(60*time.Second))
	d := time.Since(t0)
	if err != nil {
		b.Logf("fresh login u%d failed after %s: %v", k, d.Round(time.Millisecond), err)
		return d, false
	}
	nc.Close()
	return d, true
}

// pacedFlooder is flood client i: a wrong password 4 times a second (when
// the previous answer is back), over HTTP for even i and NATS for odd i.
func pacedFlooder(br *broker.Broker, i int, stop <-chan struct{}, attempts *atomic.Int64) {
	ip := fmt.Sprintf("127.0.3.%d", i+1)
	user := "alice"
	if i%4 >= 2 {
		user = fmt.Sprintf("nobody-%d", i)
	}
	c := httpFrom(ip)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		pw := fmt.Sprintf("wrong-%d", n)
		if i%2 == 0 {
			_, _, _ = basicGet(c, br.HTTPURL()+"/x", user, pw)
		} else {
			_ = natsFrom(br.NATSURL(), ip, user, pw)
		}
		attempts.Add(1)
	}
}
