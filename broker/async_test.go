package broker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const asyncPkg = "./internal/testutil/workers/lambdaasync"

// asyncRig is a real broker with a real runner in the process, a client,
// and the folder where the lambdaasync workers record their calls.
type asyncRig struct {
	t   *testing.T
	b   *broker.Broker
	nc  *nats.Conn
	c   *clientsdk.Client
	js  jetstream.JetStream
	dir string
	// host is the runner's lambda host (its stats count throttled calls).
	host *lambdas.Manager
}

func newAsyncRig(t *testing.T) *asyncRig {
	t.Helper()
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL())
	ctx := context.Background()
	opts := []lambdas.Option{lambdas.WithNodeID("n1"), lambdas.WithStopGrace(500 * time.Millisecond)}
	if testing.Verbose() {
		opts = append(opts, lambdas.WithLogger(testutil.TestLogger(t)))
	}
	host, err := lambdas.New(testutil.Connect(t, b.NATSURL()), opts...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(ctx, testutil.Connect(t, b.NATSURL()), runner.WithNodeID("n1"), runner.WithDataDir(testutil.TempDir(t)),
		runner.WithNATSURL(b.NATSURL()), runner.WithLambdaHost(host))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()); _ = host.Close(context.Background()) })
	c, err := clientsdk.Connect(ctx, clientsdk.WithConn(nc))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	dir := filepath.Join(testutil.TempDir(t), "calls")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o777) // the workers may run as users of their own
	return &asyncRig{t: t, b: b, nc: nc, c: c, js: js, dir: dir, host: host}
}

// push pushes the lambdaasync worker as lambda name in mode, with 100 ms
// backoffs, and waits until a runner hosts it.
func (r *asyncRig) push(name, mode string, mod func(*clientsdk.AsyncSpec)) {
	r.t.Helper()
	two := 2
	a := &clientsdk.AsyncSpec{Retries: &two, RetryBackoff: []clientsdk.Duration{clientsdk.Duration(100 * time.Millisecond)}}
	if mod != nil {
		mod(a)
	}
	spec := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Env: map[string]string{"ASYNC_DIR": r.dir, "ASYNC_MODE": mode},
		Lambda: &clientsdk.LambdaSpec{MaxWorkers: 4, Timeout: clientsdk.Duration(5 * time.Second), Async: a}}
	if _, err := r.c.Push(context.Background(), spec, testutil.BuildGo(r.t, asyncPkg), nil); err != nil {
		r.t.Fatal(err)
	}
	r.waitHosted(name)
}

func (r *asyncRig) waitHosted(name string) {
	r.t.Helper()
	testutil.WaitFor(r.t, 30*time.Second, "a runner hosting "+name, func() bool {
		_, err := r.nc.Request(clientsdk.LambdaHostedSubject(name), nil, time.Second)
		return err == nil
	})
}

// call is one line of calls.log.
type call struct{ id, node, pid, what string }

// calls reads what the workers recorded.
func (r *asyncRig) calls() []call {
	f, err := os.Open(filepath.Join(r.dir, "calls.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []call
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p := strings.Fields(sc.Text()); len(p) == 4 {
			out = append(out, call{p[0], p[1], p[2], p[3]})
		}
	}
	return out
}

// byID counts the calls.log lines of each request id and kind.
func (r *asyncRig) byID() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, c := range r.calls() {
		if out[c.id] == nil {
			out[c.id] = map[string]int{}
		}
		out[c.id][c.what]++
	}
	return out
}

// outcomes subscribes to a destination and collects what it receives.
func (r *asyncRig) outcomes(subject string) func() []clientsdk.AsyncOutcome {
	r.t.Helper()
	var mu sync.Mutex
	var got []clientsdk.AsyncOutcome
	sub, err := r.nc.Subscribe(subject, func(m *nats.Msg) {
		var o clientsdk.AsyncOutcome
		if json.Unmarshal(m.Data, &o) == nil {
			mu.Lock()
			got = append(got, o)
			mu.Unlock()
		}
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = r.nc.Flush()
	return func() []clientsdk.AsyncOutcome {
		mu.Lock()
		defer mu.Unlock()
		return append([]clientsdk.AsyncOutcome(nil), got...)
	}
}

func (r *asyncRig) stats(name string) clientsdk.AsyncStats {
	r.t.Helper()
	info, err := r.c.Describe(context.Background(), name)
	if err != nil {
		r.t.Fatal(err)
	}
	if info.Async == nil {
		r.t.Fatalf("info of lambda %s has no async stats", name)
	}
	return *info.Async
}

// 200 events to a function that fails the first attempt of each: every one
// succeeds on its retry, none is lost or run a third time, and the function
// sees the same request id on both attempts.
func TestAsyncRetriesEachEventOnce(t *testing.T) {
	r := newAsyncRig(t)
	r.push("ff", "fail-first", func(a *clientsdk.AsyncSpec) { a.OnSuccess = "test.ff.done" })
	done := r.outcomes("test.ff.done")
	const n = 200
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				id, err := r.c.InvokeAsync(context.Background(), "ff", []byte(fmt.Sprintf(`{"i":%d}`, i)))
				if err != nil {
					errs <- err
					return
				}
				ids[i] = id
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 90*time.Second, "200 successful outcomes", func() bool { return len(done()) >= n })
	seen := map[string]bool{}
	for _, o := range done() {
		var res struct {
			RequestID string          `json:"request_id"`
			Event     json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(o.Result, &res); err != nil {
			t.Fatalf("result %s: %v", o.Result, err)
		}
		if !o.Success || o.Attempts != 2 || o.Function != "ff" || res.RequestID != o.RequestID || string(res.Event) != string(o.Event) {
			t.Errorf("outcome %+v (the function saw request id %s)", o, res.RequestID)
		}
		if seen[o.RequestID] {
			t.Errorf("request %s succeeded twice", o.RequestID)
		}
		seen[o.RequestID] = true
	}
	calls := r.byID()
	for i, id := range ids {
		c := calls[id]
		if !seen[id] || c["start"] != 2 || c["fail"] != 1 || c["ok"] != 1 {
			t.Errorf("event %d (request %s): outcome %v, calls %v", i, id, seen[id], c)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "the stats to settle", func() bool {
		st := r.stats("ff")
		return st.Queued == 0 && st.InFlight == 0
	})
	if st := r.stats("ff"); st.Retried != n || st.DeadLettered != 0 {
		t.Fatalf("stats %+v, want %d retried and none dead-lettered", st, n)
	}
}

// A function that always fails: its event reaches the dead letters after
// 1 + retries attempts with the last error, the on-failure destination
// hears of it, and once a fixed version is pushed a redrive runs it with the
// same request id.
func TestAsyncDeadLetterThenRedrive(t *testing.T) {
	r := newAsyncRig(t)
	r.push("bad", "fail", func(a *clientsdk.AsyncSpec) { a.OnFailure = "test.bad.failed" })
	failed := r.outcomes("test.bad.failed")
	start := time.Now()
	id, err := r.c.InvokeAsync(context.Background(), "bad", []byte(`{"order":7}`))
	if err != nil {
		t.Fatal(err)
	}
	var dl clientsdk.DeadLetter
	testutil.WaitFor(t, 30*time.Second, "the event in the dead letters", func() bool {
		l, err := r.c.DeadLetters(context.Background(), "bad")
		if err != nil || len(l.DeadLetters) == 0 {
			return false
		}
		dl = l.DeadLetters[0]
		return true
	})
	if dl.RequestID != id || dl.App != "bad" || dl.Attempts != 3 || dl.ErrorType != "AsyncTestError" || dl.ErrorCode != 500 ||
		!strings.Contains(dl.Error, "failing on purpose") || dl.Enqueued.Before(start.Add(-time.Second)) ||
		dl.FirstAttempt.IsZero() || !dl.LastAttempt.After(dl.FirstAttempt) {
		t.Fatalf("dead letter %+v", dl)
	}
	if c := r.byID()[id]; c["start"] != 3 || c["fail"] != 3 {
		t.Fatalf("calls of %s: %v, want 3 failed attempts", id, c)
	}
	shown, err := r.c.DeadLetter(context.Background(), dl.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(shown.Event) != `{"order":7}` || shown.Headers[clientsdk.HeaderAttempts][0] != "3" {
		t.Fatalf("dlq show: %+v", shown)
	}
	testutil.WaitFor(t, 10*time.Second, "the on-failure outcome", func() bool { return len(failed()) == 1 })
	if o := failed()[0]; o.Success || o.Attempts != 3 || o.RequestID != id || o.Error == nil || o.Error.Type != "AsyncTestError" || string(o.Event) != `{"order":7}` {
		t.Fatalf("on-failure outcome %+v", o)
	}
	if st := r.stats("bad"); st.DeadLettered != 1 || st.Retried != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A redrive of an unknown dead letter, or of another lambda's, is refused.
	if _, err := r.c.Redrive(context.Background(), "bad", dl.ID+1000); !errors.Is(err, clientsdk.ErrNotFound) {
		t.Fatalf("redrive of a missing dead letter: %v", err)
	}

	// The fixed version runs it.
	r.push("bad", "ok", nil)
	res, err := r.c.Redrive(context.Background(), "bad")
	if err != nil || len(res.Redriven) != 1 || res.Redriven[0].RequestID != id {
		t.Fatalf("redrive: %+v %v", res, err)
	}
	testutil.WaitFor(t, 30*time.Second, "the redriven event to run", func() bool { return r.byID()[id]["ok"] == 1 })
	if l, err := r.c.DeadLetters(context.Background(), "bad"); err != nil || len(l.DeadLetters) != 0 {
		t.Fatalf("dead letters after the redrive: %+v %v", l, err)
	}
}

// An HTTP request with X-Amz-Invocation-Type: Event is stored and answered
// 202 with its request id at once; the function runs it later with the API
// Gateway event of the request. Other invocation types are refused, and so
// are names that are no lambda, before anything is stored.
func TestAsyncOverHTTP(t *testing.T) {
	r := newAsyncRig(t)
	r.push("web", "ok", func(a *clientsdk.AsyncSpec) { a.OnSuccess = "test.web.done" })
	done := r.outcomes("test.web.done")
	post := func(path, typ, body string) *http.Response {
		req, _ := http.NewRequest("POST", r.b.HTTPURL()+path, strings.NewReader(body))
		req.Header.Set(broker.HeaderInvocationType, typ)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	t0 := time.Now()
	resp := post("/web/orders?x=1", "Event", `{"sleep_ms":2000}`)
	id := resp.Header.Get("X-Amzn-RequestId")
	if resp.StatusCode != http.StatusAccepted || !clientsdk.ValidRequestID(id) || time.Since(t0) > 1500*time.Millisecond {
		t.Fatalf("POST with Event: %d, request id %q after %s", resp.StatusCode, id, time.Since(t0))
	}
	testutil.WaitFor(t, 30*time.Second, "the event to run", func() bool { return len(done()) == 1 })
	o := done()[0]
	var ev struct {
		Path                  string            `json:"path"`
		Body                  string            `json:"body"`
		HTTPMethod            string            `json:"httpMethod"`
		QueryStringParameters map[string]string `json:"queryStringParameters"`
	}
	if err := json.Unmarshal(o.Event, &ev); err != nil {
		t.Fatal(err)
	}
	if o.RequestID != id || !o.Success || ev.Path != "/orders" || ev.Body != `{"sleep_ms":2000}` || ev.HTTPMethod != "POST" || ev.QueryStringParameters["x"] != "1" {
		t.Fatalf("outcome %+v, event %+v", o, ev)
	}
	if resp := post("/web", "DryRunOrWhatever", "{}"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown invocation type: %d", resp.StatusCode)
	}
	if resp := post("/nosuch", "Event", "{}"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("Event to a name that is no lambda: %d", resp.StatusCode)
	}
	if _, err := r.c.InvokeAsync(context.Background(), "nosuch", nil); !errors.Is(err, clientsdk.ErrNotFound) {
		t.Fatalf("InvokeAsync of a name that is no lambda: %v", err)
	}
	if st := r.stats("web"); st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A plain NATS publish or request on dartup.async.NAME is stored too: the
// event runs with a request id derived from its place in the stream. Events
// for a name that is no lambda are dead-lettered, not left waiting.
func TestAsyncRawPublishAndUnknownNames(t *testing.T) {
	r := newAsyncRig(t)
	r.push("raw", "ok", func(a *clientsdk.AsyncSpec) { a.OnSuccess = "test.raw.done" })
	done := r.outcomes("test.raw.done")
	ack, err := r.nc.Request(clientsdk.AsyncSubject("raw"), []byte(`{"via":"request"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var pa struct {
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
	}
	if err := json.Unmarshal(ack.Data, &pa); err != nil || pa.Stream != clientsdk.AsyncStream {
		t.Fatalf("nats req dartup.async.raw answered %s", ack.Data)
	}
	if err := r.nc.Publish(clientsdk.AsyncSubject("raw"), []byte(`{"via":"publish"}`)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "both events to run", func() bool { return len(done()) == 2 })
	for _, o := range done() {
		if !clientsdk.ValidRequestID(o.RequestID) || o.RequestID[14] != '8' || !o.Success {
			t.Fatalf("outcome %+v: want a derived (version 8) request id", o)
		}
	}
	// A name that is no lambda, and a daemon's.
	if err := r.nc.Publish(clientsdk.AsyncSubject("nosuch"), []byte(`{"lost":false}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.Push(context.Background(), clientsdk.AppSpec{Name: "dmn", Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/sleep", "600"}}, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.nc.Request(clientsdk.AsyncSubject("dmn"), []byte(`{}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Under a name no app can have: dropped, never a dead letter that
	// nothing could purge by name.
	if _, err := r.nc.Request(clientsdk.AsyncPrefix+".-x", []byte(`{}`), 5*time.Second); err != nil {
		t.Fatal(err) // stored (the stream acknowledged it)
	}
	r.b.SweepAsync(context.Background())
	l, err := r.c.DeadLetters(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, dl := range l.DeadLetters {
		types[dl.App] = dl.ErrorType
		if dl.Attempts != 0 {
			t.Errorf("dead letter %+v: it never ran", dl)
		}
	}
	if types["nosuch"] != "NotFound" || types["dmn"] != "NotALambda" || l.Total != 2 {
		t.Fatalf("dead letters %+v", l)
	}
	if n, err := r.c.PurgeDeadLetters(context.Background(), "nosuch"); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if l, _ := r.c.DeadLetters(context.Background(), ""); l.Total != 1 {
		t.Fatalf("after the purge: %+v", l)
	}
}

// A throttled event is not an attempt: async events that find the lambda's
// workers and queue taken by synchronous calls wait and run once each.
func TestAsyncThrottledIsNoAttempt(t *testing.T) {
	r := newAsyncRig(t)
	r.push("slow", "ok", func(a *clientsdk.AsyncSpec) {
		zero := 0
		a.Retries = &zero // any attempt that failed would be dead-lettered
		a.OnSuccess = "test.slow.done"
	})
	spec, err := r.c.Describe(context.Background(), "slow")
	if err != nil {
		t.Fatal(err)
	}
	s := spec.Spec
	s.Lambda.MaxWorkers, s.Lambda.Queue = 1, 1
	if _, err := r.c.Push(context.Background(), s, testutil.BuildGo(t, asyncPkg), nil); err != nil {
		t.Fatal(err)
	}
	r.waitHosted("slow")
	done := r.outcomes("test.slow.done")
	stop := make(chan struct{})
	var throttled sync.WaitGroup
	var n429 atomic.Int64
	for range 4 {
		throttled.Add(1)
		go func() {
			defer throttled.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := r.c.Invoke(context.Background(), "slow", []byte(`{"sleep_ms":100}`))
				if errors.Is(err, clientsdk.ErrThrottled) {
					n429.Add(1)
					time.Sleep(10 * time.Millisecond) // a caller backing off, not spinning
				}
			}
		}()
	}
	testutil.WaitFor(t, 30*time.Second, "the synchronous calls to saturate the lambda", func() bool { return n429.Load() >= 5 })
	const events = 20
	for i := range events {
		if _, err := r.c.InvokeAsync(context.Background(), "slow", []byte(fmt.Sprintf(`{"sleep_ms":20,"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	// The synchronous load goes on for 2 s: the async events wait for a
	// worker (they yield to it), then run.
	time.Sleep(2 * time.Second)
	close(stop)
	throttled.Wait()
	testutil.WaitFor(t, 60*time.Second, "the events done", func() bool { return len(done()) == events })
	for _, o := range done() {
		if o.Attempts != 1 || !o.Success {
			t.Errorf("outcome %+v", o)
		}
	}
	st := r.stats("slow")
	ls, _, _ := r.host.Stats("slow")
	t.Logf("synchronous calls throttled: %d, all calls throttled: %d; async stats %+v", n429.Load(), ls.Throttled, st)
	if st.Retried != 0 || st.DeadLettered != 0 || ls.Throttled <= uint64(n429.Load()) {
		t.Fatalf("stats %+v; no async event was throttled (%d throttled calls, %d of them synchronous)", st, ls.Throttled, n429.Load())
	}
}

// A killed lambda's events wait; one older than the max event age when the
// lambda is started again is dead-lettered without running. Removing the
// lambda deletes its consumer, events and dead letters.
func TestAsyncStoppedAgedAndRemoved(t *testing.T) {
	r := newAsyncRig(t)
	r.push("k", "ok", func(a *clientsdk.AsyncSpec) { a.MaxEventAge = clientsdk.Duration(3 * time.Second) })
	if _, err := r.c.Kill(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	old, err := r.c.InvokeAsync(context.Background(), "k", []byte(`{"n":"old"}`))
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the event to count as queued", func() bool { return r.stats("k").Queued == 1 })
	time.Sleep(3500 * time.Millisecond) // let it age past the max event age: the wait is the point here
	fresh, err := r.c.InvokeAsync(context.Background(), "k", []byte(`{"n":"fresh"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := r.byID(); len(c) != 0 {
		t.Fatalf("a killed lambda ran events: %v", c)
	}
	if _, err := r.c.Start(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the fresh event to run", func() bool { return r.byID()[fresh]["ok"] == 1 })
	var dl clientsdk.DeadLetter
	testutil.WaitFor(t, 10*time.Second, "the old event in the dead letters", func() bool {
		l, err := r.c.DeadLetters(context.Background(), "k")
		if err == nil && len(l.DeadLetters) == 1 {
			dl = l.DeadLetters[0]
		}
		return dl.ID != 0
	})
	if dl.RequestID != old || dl.ErrorType != "EventAgeExceeded" || dl.Attempts != 0 || r.byID()[old] != nil {
		t.Fatalf("dead letter %+v; calls %v", dl, r.byID()[old])
	}
	// Removal forgets everything about its async events.
	if _, err := r.c.Kill(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.InvokeAsync(context.Background(), "k", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.c.Remove(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	as, _ := r.js.Stream(context.Background(), clientsdk.AsyncStream)
	dlq, _ := r.js.Stream(context.Background(), clientsdk.DLQStream)
	testutil.WaitFor(t, 10*time.Second, "the removed lambda's events, dead letters and consumer to go", func() bool {
		ai, err1 := as.Info(context.Background(), jetstream.WithSubjectFilter("dartup.async.k"))
		di, err2 := dlq.Info(context.Background(), jetstream.WithSubjectFilter("dartup.dlq.k"))
		_, err3 := as.Consumer(context.Background(), "dartup-async-k")
		return err1 == nil && err2 == nil && len(ai.State.Subjects) == 0 && len(di.State.Subjects) == 0 && errors.Is(err3, jetstream.ErrConsumerNotFound)
	})
}

// A schedule's tick (fired by JetStream into dartup.ticks.NAME, sourced
// into the async stream with a Nats-Scheduler header and no time or id)
// reaches the function with both filled in.
func TestAsyncScheduledTickFilled(t *testing.T) {
	r := newAsyncRig(t)
	r.push("cron", "ok", func(a *clientsdk.AsyncSpec) { a.OnSuccess = "test.cron.done" })
	done := r.outcomes("test.cron.done")
	info, err := r.c.Describe(context.Background(), "cron")
	if err != nil {
		t.Fatal(err)
	}
	spec := info.Spec
	spec.Lambda.Schedules = []clientsdk.Schedule{{Cron: "@every 1s"}}
	before := time.Now().UTC().Add(-time.Second)
	if _, err := r.c.Push(context.Background(), spec, testutil.BuildGo(t, asyncPkg), nil); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "a tick to run", func() bool { return len(done()) >= 1 })
	o := done()[0]
	var res struct {
		RequestID string                   `json:"request_id"`
		Event     clientsdk.ScheduledEvent `json:"event"`
	}
	if err := json.Unmarshal(o.Result, &res); err != nil {
		t.Fatal(err)
	}
	e := res.Event
	if e.ID != res.RequestID || e.ID != o.RequestID || e.Time.Before(before) || e.Time.After(time.Now().Add(time.Second)) ||
		e.Time.Nanosecond() != 0 || e.Detail.Schedule != "@every 1s" || e.DetailType != "Scheduled Event" {
		t.Fatalf("the function got %+v (request id %s)", e, res.RequestID)
	}
	if _, err := r.c.Kill(context.Background(), "cron"); err != nil { // its schedule pauses
		t.Fatal(err)
	}
}

// Events stored while a lambda is killed run as soon as it is started
// again, even right after synchronous calls (whose presence probes the
// router caches: a stale "hosted" must not send events to no runner).
func TestAsyncRightAfterStart(t *testing.T) {
	r := newAsyncRig(t)
	r.push("st", "ok", func(a *clientsdk.AsyncSpec) { a.OnSuccess = "test.st.done" })
	done := r.outcomes("test.st.done")
	for round := range 3 {
		if _, err := r.c.Invoke(context.Background(), "st", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.Kill(context.Background(), "st"); err != nil {
			t.Fatal(err)
		}
		for range 8 {
			if _, err := r.c.InvokeAsync(context.Background(), "st", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
		t0 := time.Now()
		if _, err := r.c.Start(context.Background(), "st"); err != nil {
			t.Fatal(err)
		}
		// An event sent to no runner would wait 2 × 5 s + 10 s for an answer.
		testutil.WaitFor(t, 15*time.Second, "the events to run after the start", func() bool { return len(done()) == 8*(round+1) })
		t.Logf("round %d: 8 events ran %s after the start", round, time.Since(t0).Round(time.Millisecond))
	}
	if st := r.stats("st"); st.Retried != 0 {
		t.Fatalf("stats %+v: an event went unanswered and was retried", st)
	}
}

// A new version pushed while events are being run takes over without
// costing any event an attempt: the dispatcher keeps its pull, the old
// version finishes what it holds.
func TestAsyncNewVersionMidStream(t *testing.T) {
	r := newAsyncRig(t)
	r.push("up", "ok", func(a *clientsdk.AsyncSpec) { a.OnSuccess = "test.up.done" })
	done := r.outcomes("test.up.done")
	const n = 60
	for i := range n {
		if _, err := r.c.InvokeAsync(context.Background(), "up", []byte(fmt.Sprintf(`{"sleep_ms":20,"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 30*time.Second, "the first events to run", func() bool { return len(done()) >= 5 })
	// Another timeout: the consumer's ack wait changes too (in place).
	info, err := r.c.Describe(context.Background(), "up")
	if err != nil {
		t.Fatal(err)
	}
	s := info.Spec
	s.Lambda.Timeout = clientsdk.Duration(7 * time.Second)
	if _, err := r.c.Push(context.Background(), s, testutil.BuildGo(t, asyncPkg), nil); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 60*time.Second, "every event to run", func() bool { return len(done()) >= n })
	for _, o := range done() {
		if o.Attempts != 1 {
			t.Errorf("outcome %+v: the new version cost an attempt", o)
		}
	}
	if st := r.stats("up"); st.Retried != 0 {
		t.Fatalf("stats %+v", st)
	}
	as, _ := r.js.Stream(context.Background(), clientsdk.AsyncStream)
	c, err := as.Consumer(context.Background(), "dartup-async-up")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.AckWait; got < 2*7*time.Second {
		t.Fatalf("the consumer's ack wait is %s after the timeout went to 7s", got)
	}
}
