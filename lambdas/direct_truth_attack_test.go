package lambdas_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// After bursts of mixed requests — quick ones, quick function errors,
// CPU-bound ones of 200 µs, slow ones of 3 ms — from 16 callers at once,
// dartup's stats say what its callers got: each answer and each function
// error counted once, each 429 a throttle, no timeouts; for shares of the
// queue of 0, 1, 20 and 256 (the most a worker takes).
func TestDirectMixedBurstTruth(t *testing.T) {
	for _, c := range []struct{ maxWorkers, queue int }{{4, 2}, {2, 2}, {2, 40}, {1, 100000}} {
		t.Run(fmt.Sprintf("max-workers=%d,queue=%d", c.maxWorkers, c.queue), func(t *testing.T) {
			r := newDirectRig(t)
			r.deployNative("mix", func(l *clientsdk.LambdaSpec) {
				l.MaxWorkers = c.maxWorkers
				l.Queue = c.queue
				l.Timeout = clientsdk.Duration(10 * time.Second)
			})
			r.mustInvoke("mix", "warm")
			events := []string{`"x"`, `{"error":"no"}`, `{"spin_us":200}`, `{"sleep_ms":3}`}
			var mu sync.Mutex
			got := map[int]uint64{}
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Go(func() {
					for j := range 60 {
						code := requestCode(r.client, clientsdk.LambdaSubject("mix"), []byte(events[(i+j)%len(events)]))
						mu.Lock()
						got[code]++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			want := clientsdk.LambdaStats{Invocations: 1 + got[200] + got[500], Errors: got[500], Throttled: got[429]}
			if got[-1] != 0 || uint64(16*60) != got[200]+got[500]+got[429] {
				t.Fatalf("callers got %v: some got neither an answer, an error nor a 429", got)
			}
			var st clientsdk.LambdaStats
			testutil.WaitFor(t, 10*time.Second, "every answer recorded", func() bool {
				st, _, _ = r.m.Stats("mix")
				return st.Invocations >= want.Invocations
			})
			r.m.Settle(time.Second)
			st, _, _ = r.m.Stats("mix")
			if st.Invocations != want.Invocations || st.Errors != want.Errors || st.Throttled != want.Throttled || st.Timeouts != 0 {
				t.Fatalf("callers got %v; stats %+v, want invocations %d, errors %d, throttled %d", got, st, want.Invocations, want.Errors, want.Throttled)
			}
			if st.DurationSum <= 0 || st.DurationSum > float64(st.Invocations)*0.1 {
				t.Fatalf("durations of %d requests of at most 3 ms sum to %.3f s", st.Invocations, st.DurationSum)
			}
		})
	}
}
