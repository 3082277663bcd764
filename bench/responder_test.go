package main

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
)

// The responder's pool mode (the routing floor of figure 3) echoes every
// request from its queue group, and holds to its rate: 96 requests at
// 250 a second take at least 0.3 s (0.38 s less the 20 ms of lag it may
// make up), however many callers there are.
func TestResponderPool(t *testing.T) {
	bin := testutil.BuildGo(t, "./bench/workers/responder")
	b := testutil.StartBroker(t)
	for _, bad := range [][]string{{"0", "100"}, {"4", "-1"}, {"4", "fast"}} {
		out, err := exec.Command(bin, append([]string{b.NATSURL(), "bench.pool"}, bad...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "want") {
			t.Errorf("%v: %v %q: want a refusal that says what is wanted", bad, err, out)
		}
	}
	resp, line, err := startChild(bin, nil, b.NATSURL(), "bench.pool", "4", "250")
	if err != nil || line != "ready" {
		t.Fatalf("start: %v %q", err, line)
	}
	defer resp.stop()
	nc := testutil.Connect(t, b.NATSURL())
	start := time.Now()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for i := range 100 / 8 {
				want := []byte{byte('a' + c), byte('a' + i)}
				m, err := nc.Request("bench.pool", want, 5*time.Second)
				if err != nil {
					t.Errorf("caller %d request %d: %v", c, i, err)
					return
				}
				if string(m.Data) != string(want) {
					t.Errorf("caller %d request %d: %q, want %q", c, i, m.Data, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("96 requests at 250 a second took %s: the pool did not hold its rate", took)
	}
}
