package lambdas_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
)

// A redeploy in the middle of a burst of quick requests stops workers that
// may hold the records of requests they ran back to back and have
// requests waiting in their connection: every caller still gets its answer
// (or a 429), and each answer is counted once.
func TestDirectRedeployMidBurstTruth(t *testing.T) {
	r := newDirectRig(t)
	bin := testutil.BuildGo(t, nativePkg)
	cmd := lambdas.Command{Path: bin, Env: []string{"NATS_URL=" + r.b.NATSURL(), "DARTUP_APP=rd"}}
	mod := func(l *clientsdk.LambdaSpec) {
		l.Protocol = clientsdk.ProtocolNATS
		l.MaxWorkers = 2
		l.Queue = 64
		l.Timeout = clientsdk.Duration(10 * time.Second)
	}
	if err := r.deploy(spec(t, "rd", 1, mod), cmd); err != nil {
		t.Fatal(err)
	}
	r.mustInvoke("rd", "warm")
	var mu sync.Mutex
	got := map[int]uint64{}
	var sent atomic.Int64
	half := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 100 {
				if sent.Add(1) == 800 {
					close(half)
				}
				code := requestCode(r.client, clientsdk.LambdaSubject("rd"), []byte(`"x"`))
				mu.Lock()
				got[code]++
				mu.Unlock()
			}
		})
	}
	<-half
	if err := r.deploy(spec(t, "rd", 2, mod), cmd); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got[-1] != 0 || got[200]+got[429] != 1600 {
		t.Fatalf("callers got %v: some got neither an answer nor a 429", got)
	}
	want := 1 + got[200]
	var st clientsdk.LambdaStats
	testutil.WaitFor(t, 10*time.Second, "every answer recorded", func() bool {
		st, _, _ = r.m.Stats("rd")
		return st.Invocations >= want
	})
	r.m.Settle(time.Second)
	st, _, _ = r.m.Stats("rd")
	if st.Invocations != want || st.Errors != 0 || st.Throttled != got[429] {
		t.Fatalf("callers got %v; stats %+v, want %d invocations, %d throttled", got, st, want, got[429])
	}
}
