package lambdas_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// stubRuntime is a minimal Runtime API (no NATS, no pool) driving one
// bootstrap process: the floor of the protocol's own cost.
type stubRuntime struct {
	srv     *httptest.Server
	p       *proc.Process
	events  chan struct{}
	results chan struct{}
}

func startStubRuntime(b *testing.B, bin string) *stubRuntime {
	s := &stubRuntime{events: make(chan struct{}), results: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.events:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", "r1")
		w.Header().Set("Lambda-Runtime-Deadline-Ms", "99999999999999")
		_, _ = w.Write([]byte("bench"))
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/r1/response", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		s.results <- struct{}{}
		w.WriteHeader(http.StatusAccepted)
	})
	s.srv = httptest.NewServer(mux)
	var err error
	s.p, err = proc.Start(proc.Spec{Path: bin, Env: append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+s.srv.Listener.Addr().String())})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.p.Kill(); s.srv.Close() })
	return s
}

func (s *stubRuntime) invoke() {
	s.events <- struct{}{}
	<-s.results
}

// BenchmarkWarmInvoke compares a warm invocation through lambda.NAME (NATS →
// Manager → Runtime API → aws-lambda-go → back) with a bare nats.go
// responder on the same server and with the same bootstrap driven by a
// minimal Runtime API stub (the protocol's floor), side by side in one run.
func BenchmarkWarmInvoke(b *testing.B) {
	r := newRig(b)
	stub := startStubRuntime(b, testutil.BuildGo(b, helloPkg))
	r.deployGo("hello", helloPkg, func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1 })
	sub, err := r.nc.Subscribe("bench.bare", func(m *nats.Msg) { _ = m.Respond(append([]byte("Hello, "), m.Data...)) })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := r.nc.Flush(); err != nil {
		b.Fatal(err)
	}
	payload := []byte("bench")
	for i := 0; i < 50; i++ { // warm all paths
		r.mustInvoke("hello", payload)
		stub.invoke()
		if _, err := r.client.Request("bench.bare", payload, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	lam := make([]time.Duration, 0, b.N)
	bare := make([]time.Duration, 0, b.N)
	floor := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := r.client.Request(clientsdk.LambdaSubject("hello"), payload, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := r.client.Request("bench.bare", payload, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		stub.invoke()
		lam = append(lam, t1.Sub(t0))
		bare = append(bare, t2.Sub(t1))
		floor = append(floor, time.Since(t2))
	}
	b.StopTimer()
	lp50, lp99, bp50, bp99 := pct(lam, 50), pct(lam, 99), pct(bare, 50), pct(bare, 99)
	b.ReportMetric(float64(lp50.Microseconds()), "lambda-p50-µs")
	b.ReportMetric(float64(lp99.Microseconds()), "lambda-p99-µs")
	b.ReportMetric(float64(bp50.Microseconds()), "bare-p50-µs")
	b.ReportMetric(float64(bp99.Microseconds()), "bare-p99-µs")
	b.ReportMetric(float64(pct(floor, 50).Microseconds()), "stub-runtime-p50-µs")
	b.ReportMetric(float64(lp50)/float64(max(bp50, 1)), "p50-ratio")
}

// BenchmarkWarmThroughput measures requests per second with 4 warm workers
// and 32 concurrent callers.
func BenchmarkWarmThroughput(b *testing.B) {
	r := newRig(b)
	r.deployGo("hello", helloPkg, func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 4 })
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ { // start the 4 workers
		wg.Add(1)
		go func() { defer wg.Done(); r.mustInvoke("hello", map[string]any{"sleep_ms": 50}) }()
	}
	wg.Wait()
	b.ResetTimer()
	start := time.Now()
	jobs := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	for c := 0; c < 32; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if _, err := r.client.Request(clientsdk.LambdaSubject("hello"), []byte("x"), 10*time.Second); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	if _, warm, _ := r.m.Stats("hello"); warm > 4 {
		b.Fatalf("%d workers", warm)
	}
}

// bootstrapAlone returns how long the bootstrap takes, started the same way
// (proc.Start) against a bare Runtime API stub, from fork to its response
// for the first event.
func bootstrapAlone(b *testing.B, bin string) time.Duration {
	done := make(chan time.Time, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", "r1")
		w.Header().Set("Lambda-Runtime-Deadline-Ms", "99999999999999")
		_, _ = w.Write([]byte(`"x"`))
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/r1/response", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case done <- time.Now():
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	start := time.Now()
	p, err := proc.Start(proc.Spec{Path: bin, Env: append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+srv.Listener.Addr().String())})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Kill()
	return (<-done).Sub(start)
}

// BenchmarkColdInvoke measures a cold invocation (KeepWarm 0: every request
// starts a worker) against the time the same bootstrap needs on its own to
// start, get an event and answer it; the difference is dartup's overhead.
func BenchmarkColdInvoke(b *testing.B) {
	r := newRig(b)
	bin := testutil.BuildGo(b, helloPkg)
	r.deployGo("cold", helloPkg, func(l *clientsdk.LambdaSpec) { l.KeepWarm = dur(0) })
	r.mustInvoke("cold", "warmup")
	var cold, alone []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		testutil.WaitFor(b, 10*time.Second, "no warm worker", func() bool { return r.warm("cold") == 0 })
		b.StartTimer()
		before, _, _ := r.m.Stats("cold")
		t0 := time.Now()
		r.mustInvoke("cold", "x")
		cold = append(cold, time.Since(t0))
		after, _, _ := r.m.Stats("cold")
		if after.ColdStarts != before.ColdStarts+1 {
			b.Fatalf("request %d was not a cold start", i)
		}
		b.StopTimer()
		alone = append(alone, bootstrapAlone(b, bin))
		b.StartTimer()
	}
	b.StopTimer()
	cp50, ap50 := pct(cold, 50), pct(alone, 50)
	b.ReportMetric(float64(cp50.Microseconds()), "cold-p50-µs")
	b.ReportMetric(float64(pct(cold, 99).Microseconds()), "cold-p99-µs")
	b.ReportMetric(float64(ap50.Microseconds()), "alone-p50-µs")
	b.ReportMetric(float64((cp50 - ap50).Microseconds()), "overhead-p50-µs")
}

// BenchmarkInvokeCost measures what a warm invocation costs this process
// (the NATS server, the Manager and its Runtime API, the caller; not the
// worker): allocations and CPU µs per invocation, which vary less than
// latency on a shared machine. serial: one caller; 32x4: 32 callers on 4
// workers, as the bench's concurrency figure. Compare two trees with
// benchstat:
//
//	go test -run '^$' -bench InvokeCost -benchmem -count 6 ./lambdas/ > new.txt
//
// native-direct is the native protocol in direct mode (the workers take
// their requests themselves, WithFallbackConn).
func BenchmarkInvokeCost(b *testing.B) {
	for _, p := range []struct {
		name, pkg string
		direct    bool
	}{{"runtime-api", helloPkg, false}, {"native", nativePkg, false}, {"native-direct", nativePkg, true}} {
		proto := clientsdk.ProtocolRuntimeAPI
		if p.pkg == nativePkg {
			proto = clientsdk.ProtocolNATS
		}
		b.Run(p.name+"/serial", func(b *testing.B) { benchInvokeCost(b, p.pkg, proto, p.direct, 1, 1) })
		b.Run(p.name+"/32x4", func(b *testing.B) { benchInvokeCost(b, p.pkg, proto, p.direct, 32, 4) })
	}
}

func benchInvokeCost(b *testing.B, pkg, proto string, direct bool, callers, workers int) {
	r, _ := statusRigOn(b, direct) // with its status reports, as in dartup serve
	r.deployGo("cost", pkg, func(l *clientsdk.LambdaSpec) { l.MaxWorkers, l.Protocol = workers, proto },
		"NATS_URL="+r.b.NATSURL(), "DARTUP_APP=cost")
	payload := []byte(`{"name":"bench"}`)
	var wg sync.WaitGroup
	for range 2 * workers { // start the workers
		wg.Go(func() { r.mustInvoke("cost", map[string]any{"sleep_ms": 50}) })
	}
	wg.Wait()
	conns := make([]*nats.Conn, min(callers, 4))
	for i := range conns {
		conns[i] = testutil.Connect(b, r.b.NATSURL())
	}
	for range 100 {
		r.mustInvoke("cost", payload)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	var next atomic.Int64
	for c := range callers {
		wg.Go(func() {
			nc := conns[c%len(conns)]
			for next.Add(1) <= int64(b.N) {
				if _, err := nc.Request(clientsdk.LambdaSubject("cost"), payload, 10*time.Second); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
