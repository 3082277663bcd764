package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// TestChaosServersDieInTurn runs 3 clustered servers and 2 runner nodes with
// a daemon of 4 instances on the runner nodes, then kills each server in turn
// with -9 and restarts it. Throughout: no live node is declared dead, no
// running worker is restarted or taken over (the same 4 processes run from
// start to end), and there are never two copies of an instance.
func TestChaosServersDieInTurn(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	nats, routes := freePorts(t, 3), freePorts(t, 3)
	dirs := []string{testutil.TempDir(t), testutil.TempDir(t), testutil.TempDir(t)}
	var urls []string
	for i := range 3 {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nats[i]))
	}
	start := func(i int) *server {
		var others []string
		for j := range 3 {
			if j != i {
				others = append(others, fmt.Sprintf("nats://127.0.0.1:%d", routes[j]))
			}
		}
		return startServeAt(t, dirs[i], fmt.Sprintf("127.0.0.1:%d", nats[i]), "--name", fmt.Sprintf("s%d", i+1),
			"--cluster-addr", fmt.Sprintf("127.0.0.1:%d", routes[i]), "--routes", strings.Join(others, ","))
	}
	servers := make([]*server, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); servers[i] = start(i) }()
	}
	wg.Wait()
	for _, name := range []string{"r1", "r2"} {
		startRunnerWith(t, nil, "--server", strings.Join(urls, ","), "--name", name, "--data", testutil.TempDir(t), "--label", "zone=r")
	}
	testutil.WaitFor(t, 30*time.Second, "both runner nodes to join", func() bool {
		out, _ := servers[0].try("nodes", "--json")
		return strings.Contains(out, `"id": "r1"`) && strings.Contains(out, `"id": "r2"`)
	})
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	servers[0].dartup("push", "--name", "chaosweb", "-j", "4", "--constraint", "zone=r", "--env", "WORKER_MODE=run", worker)
	before := sortedPIDs(procsOf("chaosweb"))
	if len(before) != 4 {
		t.Fatalf("chaosweb runs %d processes, want 4", len(before))
	}

	stop := make(chan struct{})
	var violations []string
	var mu sync.Mutex
	var watch sync.WaitGroup
	watch.Add(1)
	go func() { // never two copies, never a replaced worker
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if now := sortedPIDs(procsOf("chaosweb")); !slices.Equal(now, before) {
				mu.Lock()
				violations = append(violations, fmt.Sprintf("chaosweb's processes changed: %v → %v", before, now))
				mu.Unlock()
			}
		}
	}()
	for i := range 3 {
		other := servers[(i+1)%3]
		servers[i].kill9()
		// While it is down, and once it is back: the runner nodes stay alive.
		waitNodesAlive(t, other, "r1", "r2")
		servers[i] = start(i)
		waitNodesAlive(t, servers[i], "r1", "r2")
	}
	// A last look once everything has settled.
	waitNodesAlive(t, servers[0], "r1", "r2")
	// list may lag while the restarted cluster settles; it must come to
	// say what runs (while the pids are still watched).
	var a clientsdk.AppSummary
	testutil.WaitFor(t, 20*time.Second, "list to say chaosweb runs 4/4", func() bool {
		a = appSummary(t, servers[0], "chaosweb")
		return a.Running == 4 && a.State == clientsdk.AppAlive
	})
	close(stop)
	watch.Wait()
	if len(violations) > 0 {
		t.Fatalf("%d violations, first: %s", len(violations), violations[0])
	}
	for _, in := range a.Instances {
		if in.Restarts != 0 {
			t.Fatalf("instance %d was restarted %d times", in.Instance, in.Restarts)
		}
	}
}

// waitNodesAlive waits until s answers `nodes` and says each of ids is
// alive, then checks that none of them was declared dead since start: their
// instances are all still theirs.
func waitNodesAlive(t *testing.T, s *server, ids ...string) {
	t.Helper()
	testutil.WaitFor(t, 60*time.Second, "nodes "+strings.Join(ids, ", ")+" to be alive", func() bool {
		out, err := s.try("nodes", "--json")
		if err != nil {
			return false
		}
		var nodes []clientsdk.Node
		if json.Unmarshal([]byte(out), &nodes) != nil {
			return false
		}
		alive := 0
		for _, n := range nodes {
			if slices.Contains(ids, n.ID) && n.Alive {
				alive++
			}
		}
		return alive == len(ids)
	})
}

func sortedPIDs(p []int) []int {
	slices.Sort(p)
	return p
}
