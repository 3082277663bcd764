package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A runner node without a leaf server killed with SIGKILL while it passes
// a native lambda's requests on to serve: serve runs what it was given
// (the answers go to the dead node's inbox) without getting stuck, and
// takes the lambda's requests alone at once afterwards.
func TestLeaflessRunnerKilledWhilePassingOn(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	s := startServe(t, testutil.TempDir(t), "--name", "s1")
	r1 := startRunner(t, []string{s.natsURL}, "r1", testutil.TempDir(t))
	bin := testutil.BuildGo(t, "./internal/testutil/workers/lambdanative")
	s.dartup("push", "--lambda", "--name", "spill", "--protocol", "nats", "--max-workers", "2", "--queue", "2", bin)
	nc := testutil.Connect(t, s.natsURL)
	testutil.WaitFor(t, 30*time.Second, "both nodes to host the lambda", func() bool {
		return len(hostsOf(t, nc, "spill")) == 2
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, _ = nc.Request(clientsdk.LambdaSubject("spill"), []byte(`{"sleep_ms":1500,"name":"x"}`), 8*time.Second)
		})
	}
	testutil.WaitFor(t, 10*time.Second, "serve to run requests the runner node passed on", func() bool {
		return lambdaBusyOn(t, nc, "spill", "s1") > 0
	})
	r1.kill9()
	wg.Wait()
	testutil.WaitFor(t, 30*time.Second, "serve alone to host the lambda", func() bool {
		return len(hostsOf(t, nc, "spill")) == 1
	})
	for round := range 2 {
		var mu sync.Mutex
		var bad []string
		for range 4 {
			wg.Go(func() {
				m, err := nc.Request(clientsdk.LambdaSubject("spill"), []byte(`{"sleep_ms":100,"name":"y"}`), 20*time.Second)
				if err == nil && string(m.Data) == "Hello, y!" {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					bad = append(bad, err.Error())
				} else {
					bad = append(bad, string(m.Data))
				}
			})
		}
		wg.Wait()
		if len(bad) > 0 {
			t.Fatalf("round %d after the kill: %s", round, strings.Join(bad, "; "))
		}
	}
}

// lambdaBusyOn is how many of lambda name's workers on node are busy, as
// its status entry says (0 when there is none yet).
func lambdaBusyOn(t *testing.T, nc *natsgo.Conn, name, node string) int {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), clientsdk.StatusBucket)
	if err != nil {
		return 0
	}
	e, err := kv.Get(context.Background(), clientsdk.LambdaStatusKey(name, node))
	var st clientsdk.InstanceStatus
	if err != nil || json.Unmarshal(e.Value(), &st) != nil {
		return 0
	}
	return st.BusyWorkers
}
