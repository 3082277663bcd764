package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/datadir"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go/jetstream"
)

func TestDaemonRunsWithEnvAndLogs(t *testing.T) {
	e := newEnv(t)
	e.push("web", "run", func(s *clientsdk.AppSpec) { s.Instances = 2; s.Port = 9100 })
	for i := range 2 {
		st := e.waitState("web", i, clientsdk.StateRunning, 10*time.Second)
		if !alive(st.PID) || st.Node != "node-a" {
			t.Fatalf("instance %d: %+v", i, st)
		}
	}
	var lines []clientsdk.LogLine
	testutil.WaitFor(t, 5*time.Second, "both instances' ready lines in the logs stream", func() bool {
		lines = nil
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = e.c.Logs(ctx, "web", clientsdk.LogsOptions{Instance: -1}, func(l clientsdk.LogLine) { lines = append(lines, l) })
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l.Line, "ready ") {
				n++
			}
		}
		return n == 2
	})
	seen := map[string]bool{}
	for _, l := range lines {
		if strings.HasPrefix(l.Line, "ready ") {
			seen[l.Line[strings.Index(l.Line, "instance="):]] = true
		}
		if l.Stream == "err" && !strings.HasPrefix(l.Line, "stderr line") {
			t.Errorf("unexpected stderr line %q", l.Line)
		}
	}
	for i := range 2 {
		want := "instance=" + strconv.Itoa(i) + " port=" + strconv.Itoa(9100+i) + " node=node-a"
		if !seen[want] {
			t.Errorf("no ready line with %q in %v", want, seen)
		}
	}
	apps, err := e.c.List(context.Background())
	if err != nil || len(apps) != 1 || apps[0].State != clientsdk.AppAlive || apps[0].Running != 2 {
		t.Fatalf("list = %+v, %v", apps, err)
	}
}

func TestCrashLoopBacksOffThenErrors(t *testing.T) {
	e := newEnv(t)
	e.push("crashy", "crash", func(s *clientsdk.AppSpec) {
		s.Restart.MaxRestarts = 4
		s.Restart.RestartDelay = clientsdk.Duration(40 * time.Millisecond)
	})
	st := e.waitState("crashy", 0, clientsdk.StateErrored, 20*time.Second)
	if st.Restarts != 4 || !strings.Contains(st.LastError, "crash loop") || st.LastExitCode == nil || *st.LastExitCode != 1 {
		t.Fatalf("errored status = %+v", st)
	}
	// The gaps between starts grow: immediate, then 40ms, 60ms, 90ms.
	info, err := e.c.Describe(context.Background(), "crashy")
	if err != nil {
		t.Fatal(err)
	}
	var starts []time.Time
	for _, ev := range info.Events {
		if ev.Kind == clientsdk.EventStarted {
			starts = append(starts, ev.Time)
		}
	}
	if len(starts) != 5 {
		t.Fatalf("want 5 starts (1 + 4 restarts), got %d: %+v", len(starts), info.Events)
	}
	gaps := make([]time.Duration, 0, 4)
	for i := 1; i < len(starts); i++ {
		gaps = append(gaps, starts[i].Sub(starts[i-1]))
	}
	if gaps[1] < 40*time.Millisecond || gaps[2] < 60*time.Millisecond || gaps[3] < 90*time.Millisecond {
		t.Fatalf("restart gaps %v do not follow the backoff 0, 40ms, 60ms, 90ms", gaps)
	}
	if gaps[3] <= gaps[1] {
		t.Fatalf("restart gaps %v do not grow", gaps)
	}
	apps, _ := e.c.List(context.Background())
	if len(apps) != 1 || apps[0].State != clientsdk.AppError {
		t.Fatalf("list = %+v, want state error", apps)
	}
	// start resets an errored app.
	if _, err := e.c.Start(context.Background(), "crashy"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "a fresh start after `start`", func() bool {
		st, ok := e.statusOf("crashy", 0)
		return ok && st.SpecRevision > info.Spec.Revision
	})
}

func TestStableRunsKeepBeingRestarted(t *testing.T) {
	e := newEnv(t)
	e.push("periodic", "exit-after", func(s *clientsdk.AppSpec) {
		s.Env["WORKER_DURATION"] = "150ms"
		s.Restart.MaxRestarts = 1
		s.Restart.MinUptime = clientsdk.Duration(100 * time.Millisecond)
		s.Restart.RestartDelay = clientsdk.Duration(10 * time.Millisecond)
	})
	testutil.WaitFor(t, 15*time.Second, "more restarts than max_restarts", func() bool {
		st, ok := e.statusOf("periodic", 0)
		return ok && st.Restarts >= 4
	})
	st, _ := e.statusOf("periodic", 0)
	if st.State == clientsdk.StateErrored {
		t.Fatalf("a worker that runs longer than min_uptime was declared errored: %+v", st)
	}
}

func TestKillStartRemove(t *testing.T) {
	e := newEnv(t)
	e.push("svc", "run", nil)
	st := e.waitState("svc", 0, clientsdk.StateRunning, 10*time.Second)
	e.waitLog("svc", "ready pid=") // its SIGTERM handler is installed
	sum, err := e.c.Kill(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	if sum.State != clientsdk.AppDead {
		t.Fatalf("kill answered %+v", sum)
	}
	stopped := e.waitState("svc", 0, clientsdk.StateStopped, 10*time.Second)
	if alive(st.PID) {
		t.Fatalf("pid %d still alive after kill", st.PID)
	}
	if stopped.LastSignal != "" || stopped.LastExitCode == nil || *stopped.LastExitCode != 0 {
		t.Fatalf("a worker that exits on SIGTERM should report exit 0: %+v", stopped)
	}
	if _, err := e.c.Start(context.Background(), "svc"); err != nil {
		t.Fatal(err)
	}
	st2 := e.waitState("svc", 0, clientsdk.StateRunning, 10*time.Second)
	if st2.PID == st.PID || !alive(st2.PID) {
		t.Fatalf("start did not run a new process: %+v", st2)
	}
	if err := e.c.Remove(context.Background(), "svc"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "process gone and status deleted after remove", func() bool {
		_, ok := e.statusOf("svc", 0)
		return !alive(st2.PID) && !ok
	})
	if _, err := e.c.Describe(context.Background(), "svc"); err == nil {
		t.Fatal("describe after remove succeeded")
	} else if ce, ok := clientsdk.AsError(err); !ok || ce.Code != 404 {
		t.Fatalf("describe after remove: %v, want 404", err)
	}
	js, _ := jetstream.New(e.c.Conn())
	obj, _ := js.ObjectStore(context.Background(), clientsdk.ArtifactsBucket)
	if objs, _ := obj.List(context.Background()); len(objs) != 0 {
		t.Fatalf("artifacts left after remove: %d", len(objs))
	}
}

func TestKillTimeoutEscalatesToSIGKILL(t *testing.T) {
	e := newEnv(t)
	e.push("stubborn", "ignore-term", func(s *clientsdk.AppSpec) { s.Restart.KillTimeout = clientsdk.Duration(300 * time.Millisecond) })
	st := e.waitState("stubborn", 0, clientsdk.StateRunning, 10*time.Second)
	testutil.WaitFor(t, 5*time.Second, "the worker to install its SIGTERM handler", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		found := false
		_ = e.c.Logs(ctx, "stubborn", clientsdk.LogsOptions{Instance: -1}, func(l clientsdk.LogLine) { found = found || l.Line == "ignoring SIGTERM" })
		return found
	})
	start := time.Now()
	if _, err := e.c.Kill(context.Background(), "stubborn"); err != nil {
		t.Fatal(err)
	}
	stopped := e.waitState("stubborn", 0, clientsdk.StateStopped, 10*time.Second)
	took := time.Since(start)
	if stopped.LastSignal != "SIGKILL" {
		t.Fatalf("want the worker killed by SIGKILL after the kill timeout, got %+v", stopped)
	}
	if took < 300*time.Millisecond {
		t.Fatalf("SIGKILL came after %s, before the 300ms kill timeout", took)
	}
	if alive(st.PID) {
		t.Fatal("worker still alive")
	}
}

func TestForkedChildIsNotOrphaned(t *testing.T) {
	e := newEnv(t)
	e.push("forker", "fork", nil)
	e.waitState("forker", 0, clientsdk.StateRunning, 10*time.Second)
	child := 0
	testutil.WaitFor(t, 5*time.Second, "the child's pid in the logs", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = e.c.Logs(ctx, "forker", clientsdk.LogsOptions{Instance: -1}, func(l clientsdk.LogLine) {
			if v, ok := strings.CutPrefix(l.Line, "child="); ok {
				child, _ = strconv.Atoi(v)
			}
		})
		return child > 0
	})
	if !alive(child) {
		t.Fatal("child not running")
	}
	if _, err := e.c.Kill(context.Background(), "forker"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the forked child to be gone after kill", func() bool { return !alive(child) })
}

func TestTwoNodesSpreadAndFailOver(t *testing.T) {
	e := newEnv(t)
	ncB := testutil.Connect(t, e.b.NATSURL())
	rB, err := runner.New(context.Background(), ncB, runner.WithNodeID("node-b"), runner.WithDataDir(testutil.TempDir(t)),
		runner.WithTiming(250*time.Millisecond, 1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := rB.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rB.Stop(context.Background()) })
	// Let node-a see node-b's heartbeat before pushing.
	js, _ := jetstream.New(e.c.Conn())
	nodes, _ := js.KeyValue(context.Background(), clientsdk.NodesBucket)
	testutil.WaitFor(t, 5*time.Second, "node-b registered", func() bool {
		_, err := nodes.Get(context.Background(), "node-b")
		return err == nil
	})
	e.push("spread", "run", func(s *clientsdk.AppSpec) { s.Instances = 4 })
	per := map[string][]int{}
	testutil.WaitFor(t, 10*time.Second, "4 instances running", func() bool {
		per = map[string][]int{}
		for i := range 4 {
			st, ok := e.statusOf("spread", i)
			if !ok || st.State != clientsdk.StateRunning {
				return false
			}
			per[st.Node] = append(per[st.Node], st.PID)
		}
		return true
	})
	if len(per["node-a"]) == 0 || len(per["node-b"]) == 0 {
		t.Fatalf("instances not spread over both nodes: %v", per)
	}
	// node-b loses the server: its heartbeats stop.
	ncB.Close()
	start := time.Now()
	testutil.WaitFor(t, 10*time.Second, "all 4 instances running on node-a", func() bool {
		for i := range 4 {
			st, ok := e.statusOf("spread", i)
			if !ok || st.State != clientsdk.StateRunning || st.Node != "node-a" || !alive(st.PID) {
				return false
			}
		}
		return true
	})
	t.Logf("fail-over took %s (node timeout 1.5s)", time.Since(start).Round(time.Millisecond))
	testutil.WaitFor(t, 10*time.Second, "node-b to fence itself: its workers stopped", func() bool {
		for _, pid := range per["node-b"] {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

func TestDrainMovesDaemonsAndUndrain(t *testing.T) {
	e := newEnv(t)
	e.startNode("node-b", testutil.TempDir(t))
	testutil.WaitFor(t, 5*time.Second, "2 nodes", func() bool {
		n, err := e.c.Nodes(context.Background())
		return err == nil && len(n) == 2
	})
	e.push("moving", "run", func(s *clientsdk.AppSpec) { s.Instances = 4 })
	onB := []int{}
	testutil.WaitFor(t, 15*time.Second, "4 running over 2 nodes", func() bool {
		onB = onB[:0]
		for i := range 4 {
			st, ok := e.statusOf("moving", i)
			if !ok || st.State != clientsdk.StateRunning {
				return false
			}
			if st.Node == "node-b" {
				onB = append(onB, st.PID)
			}
		}
		return len(onB) > 0 && len(onB) < 4
	})
	n, err := e.c.Drain(context.Background(), "node-b", true)
	if err != nil || !n.Draining {
		t.Fatalf("drain: %+v %v", n, err)
	}
	testutil.WaitFor(t, 10*time.Second, "all 4 on node-a and node-b empty", func() bool {
		for i := range 4 {
			st, ok := e.statusOf("moving", i)
			if !ok || st.State != clientsdk.StateRunning || st.Node != "node-a" {
				return false
			}
		}
		nodes, _ := e.c.Nodes(context.Background())
		for _, n := range nodes {
			if n.ID == "node-b" && (n.Instances != 0 || !n.Draining) {
				return false
			}
		}
		return true
	})
	for _, pid := range onB {
		if alive(pid) {
			t.Fatalf("node-b's worker %d still runs after drain", pid)
		}
	}
	if _, err := e.c.Drain(context.Background(), "node-b", false); err != nil {
		t.Fatal(err)
	}
	e.push("fresh", "run", func(s *clientsdk.AppSpec) { s.Instances = 2 })
	testutil.WaitFor(t, 10*time.Second, "new work placed on the undrained node-b", func() bool {
		for i := range 2 {
			if st, ok := e.statusOf("fresh", i); ok && st.Node == "node-b" && st.State == clientsdk.StateRunning {
				return true
			}
		}
		return false
	})
	if _, err := e.c.Drain(context.Background(), "nope", true); err == nil {
		t.Fatal("draining an unknown node succeeded")
	}
}

// procsWithApp counts live processes whose environment has DARTUP_APP=app.
func procsWithApp(app string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == "DARTUP_APP="+app {
				n++
			}
		}
	}
	return n
}

// A start during a kill's grace period waits for the old worker to be gone:
// never two copies, and the new one keeps its claim.
func TestStartDuringKillGraceDoesNotDoubleRun(t *testing.T) {
	e := newEnv(t)
	e.push("slowstop", "ignore-term", func(s *clientsdk.AppSpec) { s.Restart.KillTimeout = clientsdk.Duration(1500 * time.Millisecond) })
	e.waitState("slowstop", 0, clientsdk.StateRunning, 10*time.Second)
	e.waitLog("slowstop", "ignoring SIGTERM")
	if _, err := e.c.Kill(context.Background(), "slowstop"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // inside the grace period: what we check is an absence
	if _, err := e.c.Start(context.Background(), "slowstop"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if n := procsWithApp("slowstop"); n > 1 {
			t.Fatalf("%d copies of the worker at once", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := e.waitState("slowstop", 0, clientsdk.StateRunning, 10*time.Second)
	if !alive(st.PID) || procsWithApp("slowstop") != 1 {
		t.Fatalf("after the restart: %+v, %d processes", st, procsWithApp("slowstop"))
	}
	js, _ := jetstream.New(e.c.Conn())
	place, _ := js.KeyValue(context.Background(), clientsdk.PlacementBucket)
	if _, err := place.Get(context.Background(), "slowstop.0"); err != nil {
		t.Fatalf("the running instance has no claim: %v", err)
	}
}

func TestSecondRunnerOnOneDataDirIsRefused(t *testing.T) {
	e := newEnv(t)
	dir := testutil.TempDir(t)
	e.startNode("node-x", dir)
	r2, err := runner.New(context.Background(), testutil.Connect(t, e.b.NATSURL()), runner.WithNodeID("node-y"), runner.WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	err = r2.Start(context.Background())
	if !errors.Is(err, runner.ErrDataDirInUse) || !strings.Contains(err.Error(), "own --data") {
		t.Fatalf("second runner on one data dir: %v", err)
	}
}

// uidOf returns the user a process runs as.
func uidOf(t *testing.T, pid int) uint32 {
	t.Helper()
	st, err := os.Stat("/proc/" + itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Uid
}

// processesOf counts the live processes running as uid.
func processesOf(uid uint32) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if st, err := os.Stat("/proc/" + e.Name()); err == nil && e.Name()[0] >= '0' && e.Name()[0] <= '9' {
			if st.Sys().(*syscall.Stat_t).Uid == uid && alive(atoiOr(e.Name())) {
				n++
			}
		}
	}
	return n
}

func atoiOr(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// What a worker starts in a session of its own (setsid) leaves its process
// group, so stopping the group misses it; its user does not change, and
// once the node runs nothing of the app, everything of that user is killed.
// Removing the app also deletes its work dir and frees its user id.
func TestEscapedProcessesDieWithTheirApp(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "apps have users of their own only when the runner is root")
	}
	e := newEnv(t)
	spec := clientsdk.AppSpec{Name: "escaper", Runtime: clientsdk.RuntimeCommand,
		Command: []string{"/bin/sh", "-c", "setsid /bin/sleep 1001 & echo > escaped-marker; exec /bin/sleep 1000"}}
	if _, err := e.c.Push(context.Background(), spec, "", nil); err != nil {
		t.Fatal(err)
	}
	st := e.waitState("escaper", 0, clientsdk.StateRunning, 10*time.Second)
	uid := uidOf(t, st.PID)
	testutil.WaitFor(t, 10*time.Second, "the escaped child to run", func() bool { return processesOf(uid) == 2 })
	if _, err := e.c.Kill(context.Background(), "escaper"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "every process of the app's user to be gone after kill", func() bool { return processesOf(uid) == 0 })
	e.waitState("escaper", 0, clientsdk.StateStopped, 10*time.Second)

	if _, err := e.c.Start(context.Background(), "escaper"); err != nil {
		t.Fatal(err)
	}
	st = e.waitState("escaper", 0, clientsdk.StateRunning, 10*time.Second)
	if uidOf(t, st.PID) != uid {
		t.Fatalf("the app's user changed across kill and start")
	}
	work := filepath.Join(filepath.Dir(e.dataDir), filepath.Base(e.dataDir)+"-work", "escaper")
	if _, err := os.Stat(filepath.Join(work, "escaped-marker")); err != nil {
		t.Fatalf("the app's work dir: %v", err)
	}
	if err := e.c.Remove(context.Background(), "escaper"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the removed app's processes and work dir to be gone", func() bool {
		_, err := os.Stat(work)
		return processesOf(uid) == 0 && errors.Is(err, os.ErrNotExist)
	})
}

// The work dir may not overlap the data dir: apps must never reach it.
func TestWorkDirOutsideDataDir(t *testing.T) {
	b := testutil.StartBroker(t)
	data := testutil.TempDir(t)
	for _, work := range []string{data, filepath.Join(data, "work"), filepath.Dir(data)} {
		r, err := runner.New(context.Background(), testutil.Connect(t, b.NATSURL()), runner.WithNodeID("n1"), runner.WithDataDir(data), runner.WithWorkDir(work))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); !errors.Is(err, datadir.ErrNotOurs) {
			_ = r.Stop(context.Background())
			t.Fatalf("work dir %s with data dir %s: %v, want ErrNotOurs", work, data, err)
		}
	}
}

// A status entry this node left for an app it no longer has (a removal cut
// short by a server's death) is deleted; other nodes' entries are not.
func TestStaleStatusesPruned(t *testing.T) {
	e := newEnv(t)
	put := func(key string, st clientsdk.InstanceStatus) {
		b, _ := json.Marshal(st)
		if _, err := e.status.Put(context.Background(), key, b); err != nil {
			t.Fatal(err)
		}
	}
	put("ghost.0", clientsdk.InstanceStatus{App: "ghost", Instance: 0, Node: "node-a", State: clientsdk.StateRunning, PID: 1})
	put("elsewhere.0", clientsdk.InstanceStatus{App: "elsewhere", Instance: 0, Node: "node-z", State: clientsdk.StateRunning, PID: 1})
	runner.PruneStatuses(e.r, context.Background())
	if _, err := e.status.Get(context.Background(), "ghost.0"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("this node's stale status is still there: %v", err)
	}
	if _, err := e.status.Get(context.Background(), "elsewhere.0"); err != nil {
		t.Fatalf("another node's status was deleted: %v", err)
	}
}
