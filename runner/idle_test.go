package runner_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// An idle daemon costs the runner one goroutine (its supervisor): its
// output pipes and its exit are waited for by internal/proc's shared
// watchers, its usage samples by a timer. The goroutines, stack and heap
// per idle instance are logged (go test -v) for docs/benchmarks.md.
func TestIdleDaemonsCostOneGoroutineEach(t *testing.T) {
	const n = 40
	e := newEnv(t)
	e.push("warm", "run", nil) // the first worker starts the shared watchers
	e.waitState("warm", 0, clientsdk.StateRunning, 10*time.Second)
	g0, m0 := settled()
	e.push("idle", "run", func(s *clientsdk.AppSpec) { s.Instances = n })
	for i := range n {
		e.waitState("idle", i, clientsdk.StateRunning, 30*time.Second)
	}
	e.waitLog("idle", "ready pid=") // output is read
	// Writes, log publishes and the push's own goroutines settle; what
	// stays is the cost of the idle instances.
	const slack = 10
	var g1 int
	testutil.WaitFor(t, 10*time.Second, "the goroutines of idle daemons to settle", func() bool {
		g1 = runtime.NumGoroutine()
		return g1-g0 <= n+slack
	})
	g1, m1 := settled()
	t.Logf("per idle daemon: %.2f goroutines, %.1f KiB of stack, %.1f KiB of heap (%d instances)",
		float64(g1-g0)/n, float64(int64(m1.StackInuse)-int64(m0.StackInuse))/n/1024,
		float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/n/1024, n)
}

// settled returns the goroutine count and memory statistics after two
// garbage collections.
func settled() (int, runtime.MemStats) {
	for range 6 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m
}
