package e2e

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	natsgo "github.com/nats-io/nats.go"
)

// A native lambda hosted by `dartup serve` (direct mode: its fallback is
// a leaf-node member of the queue group) and by a `dartup runner --server`
// node (no leaf server: a client member, which nats-server always prefers)
// is bounded by both nodes' --max-workers and --queue, not by the runner
// node's alone: the runner node passes on what it cannot take. Without
// that, the 8 slow requests of each round below got 4 answers of 429.
func TestLeaflessRunnerPassesOverflowOn(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	s := startServe(t, testutil.TempDir(t), "--name", "s1")
	startRunner(t, []string{s.natsURL}, "r1", testutil.TempDir(t))
	bin := testutil.BuildGo(t, "./internal/testutil/workers/lambdanative")
	s.dartup("push", "--lambda", "--name", "spill", "--protocol", "nats", "--max-workers", "2", "--queue", "2", bin)
	nc := testutil.Connect(t, s.natsURL)
	testutil.WaitFor(t, 30*time.Second, "both nodes to host the lambda", func() bool {
		return len(hostsOf(t, nc, "spill")) == 2
	})
	const rounds, burst = 3, 8
	for round := range rounds {
		var ok, throttled atomic.Int32
		var other sync.Map
		var wg sync.WaitGroup
		for range burst {
			wg.Go(func() {
				m, err := nc.Request(clientsdk.LambdaSubject("spill"), []byte(`{"sleep_ms":400,"name":"x"}`), 20*time.Second)
				switch e := clientsdk.ErrorFromMsg(m); {
				case err != nil:
					other.Store(err.Error(), true)
				case e != nil && e.Code == 429:
					throttled.Add(1)
				case e != nil:
					other.Store(e.Error(), true)
				case string(m.Data) == "Hello, x!":
					ok.Add(1)
				default:
					other.Store(string(m.Data), true)
				}
			})
		}
		wg.Wait()
		other.Range(func(k, _ any) bool { t.Errorf("round %d: %v", round, k); return true })
		if ok.Load() != burst {
			t.Fatalf("round %d: %d of %d requests answered, %d throttled (both nodes together have room for %d)", round, ok.Load(), burst, throttled.Load(), burst)
		}
	}
}

// hostsOf returns the nodes that answer lambda name's presence probe.
func hostsOf(t *testing.T, nc *natsgo.Conn, name string) map[string]bool {
	t.Helper()
	inbox := natsgo.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(clientsdk.LambdaHostedSubject(name), inbox, nil); err != nil {
		t.Fatal(err)
	}
	hosts := map[string]bool{}
	for {
		m, err := sub.NextMsg(300 * time.Millisecond)
		if err != nil {
			return hosts
		}
		hosts[string(m.Data)] = true
	}
}
