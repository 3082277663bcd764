package lambdas_test

import (
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
)

// Two full nodes without a leaf server and no direct host: neither passes
// requests on (the probe says no), and under bursts each request gets one
// answer (a result or 429, never "no responders" or none), each is counted
// once across the two nodes' stats, and both take requests afterwards.
func TestOverflowBetweenTwoNodes(t *testing.T) {
	r := newRig(t)
	mod := func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 1 }
	r.deployNative("twins", mod)
	m2 := secondManager(t, r)
	bin := testutil.BuildGo(t, nativePkg)
	if err := m2.Deploy(spec(t, "twins", 1, func(l *clientsdk.LambdaSpec) { l.Protocol = clientsdk.ProtocolNATS; mod(l) }),
		lambdas.Command{Path: bin, Env: []string{"NATS_URL=" + r.b.NATSURL(), "DARTUP_APP=twins"}}); err != nil {
		t.Fatal(err)
	}
	total := func() (inv, thr uint64) {
		for _, m := range []*lambdas.Manager{r.m, m2} {
			s, _, _ := m.Stats("twins")
			inv, thr = inv+s.Invocations, thr+s.Throttled
		}
		return inv, thr
	}
	const rounds, burst = 3, 8
	for round := range rounds {
		inv0, thr0 := total()
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for range burst {
			wg.Go(func() {
				m, err := r.client.Request(clientsdk.LambdaSubject("twins"), []byte(`{"sleep_ms":300,"name":"x"}`), 15*time.Second)
				code := 200
				if e := clientsdk.ErrorFromMsg(m); err != nil {
					code = -1
					t.Errorf("round %d: %v", round, err)
				} else if e != nil {
					code = e.Code
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if codes[200]+codes[429] != burst || codes[200] < 2 {
			t.Fatalf("round %d: answers %v: want %d, results or 429, at least 2 results", round, codes, burst)
		}
		testutil.WaitFor(t, 5*time.Second, "the stats to count every request once", func() bool {
			inv, thr := total()
			return inv-inv0 == uint64(codes[200]) && thr-thr0 == uint64(codes[429])
		})
	}
	// Both nodes take requests again: each runs some of 30 one-at-a-time.
	before := [2]uint64{}
	for i, m := range []*lambdas.Manager{r.m, m2} {
		s, _, _ := m.Stats("twins")
		before[i] = s.Invocations
	}
	for range 30 {
		r.mustInvoke("twins", "y")
	}
	for i, m := range []*lambdas.Manager{r.m, m2} {
		if s, _, _ := m.Stats("twins"); s.Invocations == before[i] {
			t.Fatalf("node %d ran none of 30 requests after the bursts: not subscribed again", i+1)
		}
	}
}
