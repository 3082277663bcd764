package lambdas_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
)

// With --keep-warm 0 a direct worker serves the request that started it
// (and is then stopped): the queued request is offered to it before it is
// told to stop, so a cold request does not start worker after worker
// until it times out.
func TestDirectKeepWarmZeroServes(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("once", func(l *clientsdk.LambdaSpec) { l.KeepWarm = dur(0); l.Timeout = clientsdk.Duration(5 * time.Second) })
	const n = 12
	for i := range n {
		if got := r.mustInvoke("once", strconv.Itoa(i)); got != "Hello, "+strconv.Itoa(i)+"!" {
			t.Fatalf("request %d answered %q", i, got)
		}
	}
	// Each worker's done notice is counted, although the worker exits
	// right after it (its exit may be seen first).
	testutil.WaitFor(t, 10*time.Second, "every worker gone", func() bool { return r.warm("once") == 0 })
	st, _, _ := r.m.Stats("once")
	if st.Invocations != n || st.Errors != 0 || st.ColdStarts > n {
		t.Fatalf("stats %+v", st)
	}
}

// A burst of slow requests on one warm direct worker does not pile up in
// it: what the server sent it before its unsubscription is passed on, so
// --max-workers workers share the burst as without direct mode (each
// request waits for a worker in dartup's queue, timed and bounded, not
// inside a busy worker).
func TestDirectSlowBurstSpreads(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("slow", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 4; l.Queue = 100 })
	r.mustInvoke("slow", "warm")
	const n = 12
	pids := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			b, e := r.invoke("slow", map[string]any{"sleep_ms": 300, "pid": true})
			if e != nil {
				t.Error(e)
				return
			}
			pids <- string(b)
		})
	}
	wg.Wait()
	close(pids)
	per := map[string]int{}
	for p := range pids {
		per[p]++
	}
	for p, c := range per {
		if c > n/2 {
			t.Fatalf("worker %s served %d of %d slow requests of a burst (per worker: %v); --max-workers is 4", p, c, n, per)
		}
	}
}

// A worker that says it takes direct mode's offer but never subscribes
// does not keep requests waiting for its keep-warm (an hour here): the
// runner sees a request come back while that worker is free in its view,
// stops it, and the next worker (a good one here) serves the request.
func TestDirectWorkerThatNeverSubscribes(t *testing.T) {
	r := newDirectRig(t)
	bin := testutil.BuildGo(t, nativePkg)
	once := filepath.Join(t.TempDir(), "nosub")
	if err := os.WriteFile(once, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := lambdas.Command{Path: bin, Env: []string{"NATS_URL=" + r.b.NATSURL(), "DARTUP_APP=nosub", "LAMBDANATIVE_NOSUB=" + once}}
	err := r.deploy(spec(t, "nosub", 1, func(l *clientsdk.LambdaSpec) {
		l.Protocol = clientsdk.ProtocolNATS
		l.MaxWorkers = 1
		l.KeepWarm = dur(time.Hour)
		l.Timeout = clientsdk.Duration(20 * time.Second)
	}), cmd)
	if err != nil {
		t.Fatal(err)
	}
	// The first request starts the bad worker: ready, "free", and it
	// takes nothing; the request waits in the queue.
	if got := r.mustInvoke("nosub", "first"); got != "Hello, first!" {
		t.Fatalf("answered %q", got)
	}
	if _, err := os.Stat(once); !os.IsNotExist(err) {
		t.Fatalf("the bad worker did not run: %v", err)
	}
}

// Closing the Manager (serve stopping) while a direct worker runs a long
// request takes the stop grace, as in hand-over mode, not the function's
// timeout: the caller was answered 503 already, no drain is worth it.
func TestDirectCloseWhileBusy(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("long", func(l *clientsdk.LambdaSpec) { l.Timeout = clientsdk.Duration(60 * time.Second) })
	r.mustInvoke("long", "warm")
	sleepers := r.watchSleepers("long")
	answer := make(chan *clientsdk.Error, 1)
	go func() {
		msg, err := r.client.Request(clientsdk.LambdaSubject("long"), []byte(`{"sleep_ms":30000}`), 40*time.Second)
		if err != nil {
			answer <- clientsdk.Errorf(0, "none", "%v", err)
			return
		}
		answer <- clientsdk.ErrorFromMsg(msg)
	}()
	select {
	case <-sleepers:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if err := r.m.Close(ctx); err != nil {
		t.Fatalf("close while a direct worker is busy: %v", err)
	}
	wantCode(t, <-answer, 503)
}

// A direct worker that dies within the first millisecond of a request
// (os.Exit, a crash), before it would tell dartup it took it: its
// in-flight file names the request, so the caller gets 502 at once (not
// its own timeout), the error is counted, a crashed event says so with
// the exit, and the next request starts a new worker.
func TestDirectWorkerCrashAnswers502(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("crashy", func(l *clientsdk.LambdaSpec) { l.Timeout = clientsdk.Duration(10 * time.Second) })
	r.mustInvoke("crashy", "warm")
	t0 := time.Now()
	_, e := r.invoke("crashy", map[string]int{"exit": 3})
	wantCode(t, e, 502)
	if took := time.Since(t0); took > 3*time.Second || !strings.Contains(e.Message, "exit code 3") {
		t.Fatalf("a worker that exited at once: %+v after %s", e, took)
	}
	testutil.WaitFor(t, 5*time.Second, "a crashed event", func() bool { return r.countEvents(clientsdk.EventCrashed) == 1 })
	r.mu.Lock()
	var got clientsdk.Event
	for _, e := range r.events {
		if e.Kind == clientsdk.EventCrashed {
			got = e
		}
	}
	r.mu.Unlock()
	if !strings.Contains(got.Message, "exit code 3") {
		t.Fatalf("crashed event %q", got.Message)
	}
	if out := r.mustInvoke("crashy", "again"); out != "Hello, again!" {
		t.Fatalf("after the crash: %q", out)
	}
	testutil.WaitFor(t, 5*time.Second, "the crash counted", func() bool {
		st, _, _ := r.m.Stats("crashy")
		return st.Invocations == 3 && st.Errors == 1
	})
	// A worker stopped by dartup (keep-warm, removal) is no crash.
	r.m.Undeploy("crashy")
	testutil.WaitFor(t, 10*time.Second, "every worker gone", func() bool { return r.warm("crashy") == 0 })
	if n := r.countEvents(clientsdk.EventCrashed); n != 1 {
		t.Fatalf("%d crashed events after a removal", n)
	}
}

// A direct request that outlives 1 ms is timed by dartup from its took
// notice; its recorded duration still counts from when the worker took it
// (the took notice says how long ago), not 1 ms short.
func TestDirectTookDurationCountsFromTheTake(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("slowish", nil)
	r.mustInvoke("slowish", "warm")
	const n, sleep = 20, 3 * time.Millisecond
	for range n {
		r.mustInvoke("slowish", map[string]int{"sleep_ms": int(sleep / time.Millisecond)})
	}
	var st clientsdk.LambdaStats
	testutil.WaitFor(t, 5*time.Second, "every invocation counted", func() bool {
		st, _, _ = r.m.Stats("slowish")
		return st.Invocations == n+1
	})
	if min := (n * sleep).Seconds(); st.DurationSum < min {
		t.Fatalf("%d requests of %s recorded %.4f s in all, under %.4f s", n, sleep, st.DurationSum, min)
	}
}

// A worker's batched done notice counts at most MaxDoneBatch records, each
// no longer than the timeout, and only for its own lambda: a worker that
// forges 1,000 records (and a line that cannot be read) inflates its own
// lambda's books by 64 at most, and goes on serving.
func TestDirectForgedBatchIsBounded(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("forger", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Timeout = clientsdk.Duration(2 * time.Second) })
	r.deployNative("honest", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1 })
	if got := r.mustInvoke("forger", map[string]any{"forge_batch": 1000}); got != "forged" {
		t.Fatalf("forge_batch answered %q", got)
	}
	var st clientsdk.LambdaStats
	want := uint64(1 + clientsdk.MaxDoneBatch)
	testutil.WaitFor(t, 10*time.Second, "the forged records counted", func() bool {
		st, _, _ = r.m.Stats("forger")
		return st.Invocations >= want
	})
	if got := r.mustInvoke("forger", "after"); got != "Hello, after!" {
		t.Fatalf("after the forged batch: %q", got)
	}
	testutil.WaitFor(t, 5*time.Second, "the next request counted", func() bool {
		st, _, _ = r.m.Stats("forger")
		return st.Invocations >= want+1
	})
	r.m.Settle(time.Second)
	st, _, _ = r.m.Stats("forger")
	if st.Invocations != want+1 || st.Errors != uint64(clientsdk.MaxDoneBatch) || st.DurationSum > float64(clientsdk.MaxDoneBatch)*2+1 {
		t.Fatalf("a forged batch of 1,000: %+v, want %d invocations (64 forged errors of 2 s at most)", st, want+1)
	}
	if hs, _, _ := r.m.Stats("honest"); hs.Invocations != 0 {
		t.Fatalf("another lambda's books changed: %+v", hs)
	}
}

// A direct worker killed while idle, after fast requests whose records it
// still held (within holdFor, not sent yet) or sent in a batch its
// in-flight file still lists: dartup counts the first from the file, the
// second once (they are in the last batches it got), answers nobody 502
// and counts no error for them; the kill is a crash.
func TestDirectIdleKillAnswersNobody(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("idle", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1 })
	for i := range 5 {
		if got := r.mustInvoke("idle", strconv.Itoa(i)); got != "Hello, "+strconv.Itoa(i)+"!" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	pid := r.pid("idle") // a sixth request, fast too
	r.m.Settle(time.Second)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the kill seen as a crash", func() bool { return r.countEvents(clientsdk.EventCrashed) == 1 })
	st, _, _ := r.m.Stats("idle")
	if st.Invocations != 6 || st.Errors != 0 {
		t.Fatalf("after an idle worker's kill: %+v, want 6 invocations, no error", st)
	}
}
