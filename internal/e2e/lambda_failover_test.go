package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// outcome is what became of one lambda request.
type outcome struct {
	sent, done time.Time
	node       string           // who answered, on success
	svcErr     *clientsdk.Error // an explicit error answer
	timeout    bool             // no answer before the caller's deadline
	other      error            // anything else (a test failure)
}

// TestLambdaNodeKilledMidRun sends 1,000 requests to a lambda hosted by two
// nodes (`dartup serve` and a `dartup runner`) from 16 goroutines and
// `kill -9`s the runner after 300 have completed. Every request must end in
// a reply or an explicit error; the only requests allowed to fail are the
// ones in flight on the dead node when it died (they time out: NATS has no
// way to tell a requester that the member of the queue group holding its
// request is gone), so their number is bounded by what that node could hold
// (the 16 callers; max-workers + queue per node).
// closeNoticed bounds how long after a runner's process is reaped its NATS
// server may still route a request to it (the kernel's close of its socket
// reaches the server a moment later; more on a loaded machine).
const closeNoticed = 250 * time.Millisecond

func TestLambdaNodeKilledMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process lambda fail-over test skipped in -short mode")
	}
	const (
		total       = 1000
		concurrency = 16
		killAfter   = 300
		maxWorkers  = 4
		queue       = 16
		perRequest  = 2 * time.Second
	)
	worker := testutil.BuildGo(t, "./internal/testutil/workers/lambdanode")
	s := startServe(t, testutil.TempDir(t), "--name", "s1")
	r := startRunner(t, []string{s.natsURL}, "r1", testutil.TempDir(t))
	testutil.WaitFor(t, 30*time.Second, "2 nodes (s1 and r1)", func() bool {
		out, err := s.try("nodes", "--json")
		var nodes []clientsdk.Node
		return err == nil && json.Unmarshal([]byte(out), &nodes) == nil && len(nodes) == 2
	})
	s.dartup("push", "--lambda", "--name", "who", "--max-workers", fmt.Sprint(maxWorkers), "--queue", fmt.Sprint(queue),
		"--timeout", "10s", worker)

	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(s.natsURL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	invoke := func(i int) outcome {
		o := outcome{sent: time.Now()}
		ctx, cancel := context.WithTimeout(context.Background(), perRequest)
		defer cancel()
		out, err := c.Invoke(ctx, "who", []byte(fmt.Sprint(i)))
		o.done = time.Now()
		var ce *clientsdk.Error
		switch {
		case err == nil:
			node, rest, _ := strings.Cut(string(out), " ")
			if rest != fmt.Sprint(i) {
				o.other = fmt.Errorf("request %d got the answer %q", i, out)
			}
			o.node = node
		case errors.As(err, &ce):
			o.svcErr = ce
		case errors.Is(err, context.DeadlineExceeded):
			o.timeout = true
		default:
			o.other = err
		}
		return o
	}

	// Warm both nodes: keep-warm workers on each, so that the run measures
	// fail-over and not cold starts.
	testutil.WaitFor(t, 30*time.Second, "both nodes answering who", func() bool {
		var mu sync.Mutex
		seen := map[string]bool{}
		var wg sync.WaitGroup
		for i := range 2 * concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if o := invoke(i); o.node != "" {
					mu.Lock()
					seen[o.node] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return seen["s1"] && seen["r1"]
	})

	outcomes := make([]outcome, total)
	var next, completed atomic.Int64
	var killStart, killDone time.Time
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				outcomes[i] = invoke(i)
				if completed.Add(1) == killAfter {
					killStart = time.Now()
					r.kill9()
					killDone = time.Now()
					close(killed)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatal("the runner was never killed")
	}

	perNode := map[string][2]int{} // node → answers before, after the kill
	var timeoutsBefore, timeoutsAfter, svcErrs int
	var duringKill int // timeouts of requests sent while kill -9 ran
	var lastFailure time.Time
	for i, o := range outcomes {
		switch {
		case o.other != nil:
			t.Errorf("request %d: neither a reply nor an explicit error: %v", i, o.other)
		case o.node != "":
			n := perNode[o.node]
			if o.sent.Before(killDone) {
				n[0]++
			} else {
				n[1]++
				if o.node == "r1" {
					t.Errorf("request %d sent after the kill was answered by the dead node r1", i)
				}
			}
			perNode[o.node] = n
		case o.svcErr != nil:
			svcErrs++
			t.Logf("request %d: explicit error %d %s: %s (sent %s after the kill)", i, o.svcErr.Code, o.svcErr.Type,
				o.svcErr.Message, o.sent.Sub(killStart).Round(time.Millisecond))
			if !o.sent.Before(killDone) {
				t.Errorf("request %d sent after the kill got an error: %v", i, o.svcErr)
			}
		case o.timeout:
			// The server learns of the dead connection from the kernel's
			// close a moment after the process is reaped: a request sent
			// in that moment still goes to r1's subscription.
			if o.sent.Before(killDone.Add(closeNoticed)) {
				timeoutsBefore++
				if !o.sent.Before(killStart) {
					duringKill++
				}
			} else {
				timeoutsAfter++
				t.Errorf("request %d sent %s after the kill completed hung until the caller's timeout",
					i, o.sent.Sub(killDone).Round(time.Millisecond))
			}
		}
		if (o.timeout || o.svcErr != nil) && o.done.After(lastFailure) {
			lastFailure = o.done
		}
	}
	lost := timeoutsBefore + svcErrs
	bound := min(concurrency, maxWorkers+queue)
	t.Logf("1,000 requests, r1 killed after %d: answers per node (before, after the kill) %v; "+
		"kill -9 took %s; lost (in flight on r1, caller timeout %s) %d (%d of them sent while kill -9 ran), explicit errors %d, "+
		"timeouts after the kill %d",
		killAfter, perNode, killDone.Sub(killStart).Round(time.Millisecond), perRequest, timeoutsBefore, duringKill, svcErrs, timeoutsAfter)
	if lost > bound {
		t.Errorf("%d requests failed; at most %d can be in flight on the dead node", lost, bound)
	}
	if perNode["r1"][0] == 0 {
		t.Errorf("r1 answered nothing before it was killed: %v", perNode)
	}
	if perNode["s1"][1] == 0 {
		t.Errorf("s1 answered nothing after the kill: %v", perNode)
	}
	sum := 0
	for _, n := range perNode {
		sum += n[0] + n[1]
	}
	if sum+lost+timeoutsAfter != total {
		t.Errorf("%d answers + %d failures != %d requests", sum, lost+timeoutsAfter, total)
	}
}
