package lambdas_test

import (
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// A lambda under load scales out to --max-workers, one invocation at a
// time per worker: 8 callers in a closed loop, each request 300 µs of CPU,
// on a lambda with --max-workers 4 must start more than one worker. A
// request reaches dartup (which starts workers) only when no worker is
// subscribed; a direct worker that runs the requests waiting in its
// connection back to back stays subscribed while no more than its share
// of the queue (--queue over --max-workers: 16 with the defaults) wait, so
// 8 callers never make it give up its subscription and one worker serves
// them all, one request after another. With a share of 0 (--queue 3: the
// worker as it was before it ran requests back to back) dartup starts all
// 4. Measured on the 2-core test machine, 300 µs requests: 4,600 against
// 3,150 answered a second, mean latency 1.7 against 2.5 ms. (The one way
// out is a hiccup: a request that outlives 1 ms makes the worker give up
// its subscription, and the next requests reach dartup. Under -race, or
// on a loaded machine, that happens, and this test may pass by chance.)
func TestDirectBusyLambdaScalesOut(t *testing.T) {
	for _, c := range []struct {
		name  string
		queue int
	}{{"share=0", 3}, {"share=16", clientsdk.DefaultQueue}} {
		t.Run(c.name, func(t *testing.T) {
			r := newDirectRig(t)
			r.deployNative("busy", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 4; l.Queue = c.queue })
			r.mustInvoke("busy", "warm")
			var wg sync.WaitGroup
			end := time.Now().Add(2 * time.Second)
			for range 8 {
				wg.Go(func() {
					for time.Now().Before(end) {
						if _, err := r.client.Request(clientsdk.LambdaSubject("busy"), []byte(`{"spin_us":300}`), 10*time.Second); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if warm := r.warm("busy"); warm < 2 {
				st, _, _ := r.m.Stats("busy")
				t.Fatalf("8 callers found %d warm worker(s) of 4 (%d invocations in 2 s): the lambda did not scale out", warm, st.Invocations)
			}
		})
	}
}
