package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go/jetstream"
)

// env is a real broker with a runner node and a client connected to it.
type env struct {
	t       *testing.T
	b       *broker.Broker
	c       *clientsdk.Client
	r       *runner.Runner
	status  jetstream.KeyValue
	worker  string
	dataDir string // node-a's
}

func newEnv(t *testing.T, opts ...runner.Option) *env {
	t.Helper()
	b := testutil.StartBroker(t)
	e := &env{t: t, b: b, worker: testutil.BuildGo(t, "./internal/testutil/workers/daemon")}
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e.c = c
	e.dataDir = testutil.TempDir(t)
	e.r = e.startNode("node-a", e.dataDir, opts...)
	js, _ := jetstream.New(c.Conn())
	e.status, err = js.KeyValue(context.Background(), clientsdk.StatusBucket)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) startNode(id, dir string, opts ...runner.Option) *runner.Runner {
	e.t.Helper()
	nc := testutil.Connect(e.t, e.b.NATSURL())
	base := []runner.Option{runner.WithNodeID(id), runner.WithDataDir(dir), runner.WithTiming(250*time.Millisecond, 1500*time.Millisecond)}
	if testing.Verbose() {
		base = append(base, runner.WithLogger(testutil.TestLogger(e.t)))
	}
	r, err := runner.New(context.Background(), nc, append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

// push pushes the test worker as a daemon with the given mode and tweaks.
func (e *env) push(name, mode string, tweak func(*clientsdk.AppSpec)) *clientsdk.AppSpec {
	e.t.Helper()
	spec := clientsdk.AppSpec{Name: name, Env: map[string]string{"WORKER_MODE": mode}}
	if tweak != nil {
		tweak(&spec)
	}
	s, err := e.c.Push(context.Background(), spec, e.worker, nil)
	if err != nil {
		e.t.Fatalf("push %s: %v", name, err)
	}
	return s
}

func (e *env) statusOf(app string, i int) (clientsdk.InstanceStatus, bool) {
	ent, err := e.status.Get(context.Background(), clientsdk.InstanceKey(app, i))
	if err != nil {
		return clientsdk.InstanceStatus{}, false
	}
	var st clientsdk.InstanceStatus
	return st, json.Unmarshal(ent.Value(), &st) == nil
}

// waitState waits until instance i of app is in state and returns its status.
func (e *env) waitState(app string, i int, state clientsdk.InstanceState, timeout time.Duration) clientsdk.InstanceStatus {
	e.t.Helper()
	var st clientsdk.InstanceStatus
	var ok bool
	deadline := time.Now().Add(timeout)
	for {
		st, ok = e.statusOf(app, i)
		if ok && st.State == state && (state != clientsdk.StateRunning || st.PID > 0) {
			return st
		}
		if time.Now().After(deadline) {
			// Say where it stands, so that a slow start and a stuck one read apart.
			e.t.Fatalf("timed out after %s waiting for %s.%d to be %s; its status (found %v): %+v", timeout, app, i, state, ok, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return !errors.Is(err, syscall.ESRCH)
	}
	// a zombie counts as dead
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || s[i+2] != 'Z'
}

func itoa(i int) string { return strings.TrimSpace(strings.Replace(jsonNum(i), "\n", "", -1)) }

func jsonNum(i int) string { b, _ := json.Marshal(i); return string(b) }

// countLog returns how many lines of app's output so far contain substr.
func (e *env) countLog(app, substr string) int {
	// Long enough to read the whole history on a loaded machine: the lines
	// counted last are the newest, and a cut-short read misses them.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	_ = e.c.Logs(ctx, app, clientsdk.LogsOptions{Instance: -1}, func(l clientsdk.LogLine) {
		if strings.Contains(l.Line, substr) {
			n++
		}
	})
	return n
}

// waitLog waits until a line of app's output contains substr.
func (e *env) waitLog(app, substr string) {
	e.t.Helper()
	testutil.WaitFor(e.t, 10*time.Second, app+" to print "+substr, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		found := false
		_ = e.c.Logs(ctx, app, clientsdk.LogsOptions{Instance: -1}, func(l clientsdk.LogLine) { found = found || strings.Contains(l.Line, substr) })
		return found
	})
}
