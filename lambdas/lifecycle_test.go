package lambdas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func statusKV(t testing.TB, nc *nats.Conn) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), clientsdk.StatusBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func readStatus(t testing.TB, kv jetstream.KeyValue, app string) (clientsdk.InstanceStatus, bool) {
	e, err := kv.Get(context.Background(), clientsdk.LambdaStatusKey(app, "n1"))
	if err != nil {
		return clientsdk.InstanceStatus{}, false
	}
	var s clientsdk.InstanceStatus
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		t.Fatal(err)
	}
	return s, true
}

// Keep-warm: a second request within the TTL reuses the pid; after the TTL
// no worker process is left and the status entry says 0 warm workers.
func TestKeepWarm(t *testing.T) {
	var kv jetstream.KeyValue
	r := newRigWith(t, func(nc *nats.Conn) []lambdas.Option {
		kv = statusKV(t, nc)
		return []lambdas.Option{lambdas.WithStatusBucket(kv)}
	})
	r.deployGo("warm", helloPkg, func(l *clientsdk.LambdaSpec) { l.KeepWarm = dur(time.Second) })
	p1 := r.pid("warm")
	p2 := r.pid("warm")
	if p1 != p2 {
		t.Fatalf("second request within keep-warm used pid %d, first %d", p2, p1)
	}
	testutil.WaitFor(t, 5*time.Second, "status shows 1 warm worker", func() bool {
		s, ok := readStatus(t, kv, "warm")
		return ok && s.WarmWorkers == 1 && s.State == clientsdk.StateRunning && s.Lambda != nil
	})
	testutil.WaitFor(t, 5*time.Second, "the idle worker is stopped", func() bool { return !alive(p1) && r.warm("warm") == 0 })
	testutil.WaitFor(t, 5*time.Second, "status shows 0 warm workers", func() bool {
		s, ok := readStatus(t, kv, "warm")
		return ok && s.WarmWorkers == 0 && s.State == clientsdk.StateStopped && s.Instance == -1 && s.Node == "n1" &&
			s.Lambda != nil && s.Lambda.Invocations == 2 && s.Lambda.ColdStarts == 1
	})
	if p3 := r.pid("warm"); p3 == p1 {
		t.Fatal("pid reused after keep-warm expired")
	}
	r.m.Undeploy("warm")
	testutil.WaitFor(t, 5*time.Second, "status entry removed", func() bool { _, ok := readStatus(t, kv, "warm"); return !ok })
	if _, _, ok := r.m.Stats("warm"); ok {
		t.Fatal("stats of an undeployed lambda")
	}
	// Without a runner: "no responders" (no dartup server subscribes
	// lambda.NAME).
	if _, err := r.client.Request(clientsdk.LambdaSubject("warm"), []byte("x"), 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a request for an undeployed lambda: %v, want no responders", err)
	}
}

// KeepWarm 0 stops the worker after each request.
func TestKeepWarmZero(t *testing.T) {
	r := newRig(t)
	r.deployGo("once", helloPkg, func(l *clientsdk.LambdaSpec) { l.KeepWarm = dur(0) })
	p1 := r.pid("once")
	testutil.WaitFor(t, 5*time.Second, "worker stopped after its request", func() bool { return !alive(p1) && r.warm("once") == 0 })
	if p2 := r.pid("once"); p2 == p1 {
		t.Fatal("worker reused with keep-warm 0")
	}
}

// A new revision replaces the old: the request in flight on the old worker
// finishes, new requests go to new workers, the old worker stops.
func TestRedeployReplaces(t *testing.T) {
	r := newRig(t)
	bin := testutil.BuildGo(t, helloPkg)
	if err := r.deploy(spec(t, "app", 1, nil), lambdas.Command{Path: bin}); err != nil {
		t.Fatal(err)
	}
	sleepers := r.watchSleepers("app")
	slow := make(chan string, 1)
	go func() {
		b, e := r.invoke("app", map[string]any{"sleep_ms": 500, "name": "old"})
		if e != nil {
			slow <- e.Error()
			return
		}
		slow <- string(b)
	}()
	oldPID := <-sleepers
	// Same revision: no-op.
	if err := r.deploy(spec(t, "app", 1, nil), lambdas.Command{Path: bin}); err != nil {
		t.Fatal(err)
	}
	if err := r.deploy(spec(t, "app", 2, nil), lambdas.Command{Path: bin}); err != nil {
		t.Fatal(err)
	}
	if v := r.mustInvoke("app", map[string]any{"env": "AWS_LAMBDA_FUNCTION_VERSION"}); v != "2" {
		t.Fatalf("new requests run version %q", v)
	}
	if got := <-slow; got != "Hello, old!" {
		t.Fatalf("in-flight request on the old revision: %q", got)
	}
	testutil.WaitFor(t, 5*time.Second, "old worker stopped", func() bool { return !alive(oldPID) })
	testutil.WaitFor(t, 5*time.Second, "one warm worker", func() bool { return r.warm("app") == 1 })
}

// Close answers waiting requests with 503 and leaves no process behind.
func TestCloseStopsEverything(t *testing.T) {
	r := newRig(t)
	r.deployGo("c", helloPkg, func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1 })
	sleepers := r.watchSleepers("c")
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, e := r.invoke("c", map[string]any{"sleep_ms": 20000})
			if e == nil {
				codes <- 200
				return
			}
			codes <- e.Code
		}()
	}
	pid := <-sleepers
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Let the other two requests reach the Manager's queue.
	testutil.WaitFor(t, 5*time.Second, "requests in", func() bool { return r.nc.Stats().InMsgs >= 3 })
	if err := r.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 503 {
			t.Errorf("request answered %d on close, want 503", c)
		}
	}
	if alive(pid) {
		t.Fatalf("worker %d survived Close", pid)
	}
	if err := r.deploy(spec(t, "x", 1, nil), lambdas.Command{Path: "/bin/true"}); err == nil {
		t.Fatal("Deploy after Close succeeded")
	}
}

// A real Dart program as a stdio lambda: sass.snapshot on the Dart AOT
// runtime turns SCSS into CSS; invalid SCSS is a 500 with stderr's tail.
func TestStdioDartSass(t *testing.T) {
	dart, snapshot := testutil.DartSass(t)
	r := newRig(t)
	s := spec(t, "sass", 1, func(l *clientsdk.LambdaSpec) { l.Protocol = clientsdk.ProtocolStdio; l.MaxWorkers = 2; l.Queue = 4 })
	if err := r.deploy(s, lambdas.Command{Path: dart, Args: []string{snapshot, "--stdin"}}); err != nil {
		t.Fatal(err)
	}
	css := r.mustInvoke("sass", "$c: red;\na { b { color: $c; } }\n")
	if want := "a b {\n  color: red;\n}"; strings.TrimSpace(css) != want {
		t.Fatalf("sass answered %q, want %q", css, want)
	}
	_, e := r.invoke("sass", "a { color: ")
	wantCode(t, e, 500)
	if e.Type != lambdas.TypeFunctionExit || !strings.Contains(e.Message, "Error") {
		t.Fatalf("invalid SCSS: %+v", e)
	}
	// Concurrency beyond MaxWorkers+Queue is throttled; the rest is served.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, e := r.invoke("sass", "a { color: blue; }")
			mu.Lock()
			defer mu.Unlock()
			if e != nil {
				codes[e.Code]++
			} else {
				codes[200]++
			}
		}()
	}
	wg.Wait()
	if codes[200] < 6 || codes[200]+codes[429] != 10 {
		t.Fatalf("stdio burst: %v", codes)
	}
	st, _, _ := r.m.Stats("sass")
	t.Logf("sass stdio: %v; stats %+v", codes, st)
}

// stdio timeout and oversized output.
func TestStdioLimits(t *testing.T) {
	r := newRig(t)
	deploy := func(name, script string, timeout time.Duration) {
		s := spec(t, name, 1, func(l *clientsdk.LambdaSpec) {
			l.Protocol = clientsdk.ProtocolStdio
			l.Timeout = clientsdk.Duration(timeout)
		})
		if err := r.deploy(s, lambdas.Command{Path: "/bin/sh", Args: []string{"-c", script}}); err != nil {
			t.Fatal(err)
		}
	}
	deploy("cat", "cat", time.Second)
	deploy("sleep", "sleep 30", 200*time.Millisecond)
	deploy("flood", "head -c 7000000 /dev/zero", 5*time.Second)
	if got := r.mustInvoke("cat", "echo me"); got != "echo me" {
		t.Fatalf("cat: %q", got)
	}
	_, e := r.invoke("sleep", "x")
	wantCode(t, e, 504)
	_, e = r.invoke("flood", "x")
	wantCode(t, e, 413)
}

// A stdio lambda's child that escapes its group (setsid) and keeps stdout
// open neither holds the answer nor the slot: the answer comes when the
// process exits (its output cut OutputWaitDelay later), a timeout answers
// 504 at once, and the escaped children are swept once their worker is gone
// (the runner gives every worker DARTUP_APP, which marks its descendants).
func TestStdioEscapedChild(t *testing.T) {
	if err := proc.EnableOrphanReaper(); err != nil {
		t.Skipf("no PR_SET_CHILD_SUBREAPER here: %v", err)
	}
	r := newRig(t)
	tag := fmt.Sprintf("%d.%03d", 2000+os.Getpid()%1000, time.Now().Nanosecond()/1e6)
	deploy := func(name, script string, timeout time.Duration) {
		s := spec(t, name, 1, func(l *clientsdk.LambdaSpec) {
			l.Protocol = clientsdk.ProtocolStdio
			l.Timeout = clientsdk.Duration(timeout)
		})
		if err := r.deploy(s, lambdas.Command{Path: "/bin/sh", Args: []string{"-c", script}, Env: []string{"PATH=/usr/bin:/bin", "DARTUP_APP=" + name}}); err != nil {
			t.Fatal(err)
		}
	}
	deploy("escapes", "setsid sleep 6"+tag+" & echo done", 2*time.Second)
	deploy("escapeslow", "setsid sleep 7"+tag+" & sleep 60", 300*time.Millisecond)
	if got := r.mustInvoke("escapes", "x"); got != "done\n" {
		t.Fatalf("escapes answered %q, want %q", got, "done\n")
	}
	_, e := r.invoke("escapeslow", "x")
	wantCode(t, e, 504)
	for _, arg := range []string{"6" + tag, "7" + tag} {
		testutil.WaitFor(t, 10*time.Second, "the escaped child sleep "+arg+" to be swept", func() bool { return sleepWithArg(arg) == 0 })
	}
}

// sleepWithArg returns the pid of a live "sleep ARG" process, or 0.
func sleepWithArg(arg string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue
		}
		if bytes.Equal(cmd, []byte("sleep\x00"+arg+"\x00")) {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	return 0
}
