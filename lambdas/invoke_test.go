package lambdas_test

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

// The stock `nats` CLI invokes an aws-lambda-go bootstrap.
func TestHelloWithNATSCLI(t *testing.T) {
	r := newRig(t)
	r.deployGo("hello", helloPkg, nil)
	natsBin := testutil.NATSCLI(t)
	out, err := exec.Command(natsBin, "--server", r.b.NATSURL(), "req", "lambda.hello", "world", "--raw").CombinedOutput()
	if err != nil {
		t.Fatalf("nats req: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "Hello, world!" {
		t.Fatalf("nats req answered %q", got)
	}
	// A function error shows as a service error in the CLI.
	out, _ = exec.Command(natsBin, "--server", r.b.NATSURL(), "req", "lambda.hello", `{"error":"nope"}`).CombinedOutput()
	if !strings.Contains(string(out), "500") || !strings.Contains(string(out), "HelloError") {
		t.Fatalf("nats req of a failing function printed:\n%s", out)
	}
}

// The bootstrap sees the Runtime API headers and the environment AWS sets.
func TestRuntimeAPIContextAndEnv(t *testing.T) {
	t.Setenv("_LAMBDA_SERVER_PORT", "9999")
	r := newRig(t)
	r.deployGo("ctx", helloPkg, func(l *clientsdk.LambdaSpec) {
		l.Handler = "main.handler"
		l.MemoryMB = 256
		l.Timeout = clientsdk.Duration(7 * time.Second)
	}, "USER_VAR=x")
	before := time.Now()
	var c struct {
		RequestID  string `json:"request_id"`
		ARN        string `json:"arn"`
		DeadlineMS int64  `json:"deadline_ms"`
		Function   string `json:"function"`
		Memory     int    `json:"memory"`
		EventBytes int    `json:"event_bytes"`
	}
	if err := json.Unmarshal([]byte(r.mustInvoke("ctx", map[string]any{"ctx": true})), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.RequestID) != 36 || !strings.HasSuffix(c.ARN, ":function:ctx") || c.Function != "ctx" || c.Memory != 256 {
		t.Fatalf("context = %+v", c)
	}
	dl := time.UnixMilli(c.DeadlineMS)
	if dl.Before(before.Add(6*time.Second)) || dl.After(time.Now().Add(7*time.Second)) {
		t.Fatalf("deadline %v is not about 7s after %v", dl, before)
	}
	for k, want := range map[string]string{
		"_HANDLER": "main.handler", "AWS_LAMBDA_FUNCTION_NAME": "ctx", "AWS_LAMBDA_FUNCTION_VERSION": "1",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/ctx", "AWS_REGION": "us-east-1",
		"_LAMBDA_SERVER_PORT": "", "USER_VAR": "x", "AWS_EXECUTION_ENV": "AWS_Lambda_dartup",
	} {
		if got := r.mustInvoke("ctx", map[string]any{"env": k}); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_LOG_STREAM_NAME"} {
		if got := r.mustInvoke("ctx", map[string]any{"env": k}); got == "" {
			t.Errorf("%s is not set", k)
		}
	}
	if got := r.mustInvoke("ctx", map[string]any{"env": "AWS_LAMBDA_RUNTIME_API"}); !regexp.MustCompile("^" + regexp.QuoteMeta(r.m.RuntimeAPIAddr()) + "/w/[0-9a-f]{32}$").MatchString(got) {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q", got)
	}
	// Events larger than one buffer go out in one write on a hijacked
	// connection; the worker keeps its keep-alive connection working.
	for _, n := range []int{10 << 10, 200 << 10, 2 << 20} {
		pad := strings.Repeat("p", n)
		raw := r.mustInvoke("ctx", map[string]any{"ctx": true, "pad": pad})
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatal(err)
		}
		if c.EventBytes < n {
			t.Fatalf("event of %d bytes arrived with %d", n, c.EventBytes)
		}
	}
	// The client context of a NATS request's header reaches the function.
	req := nats.NewMsg(clientsdk.LambdaSubject("ctx"))
	req.Header.Set(lambdas.HeaderClientContext, `{"custom":{"k":"v"}}`)
	req.Data = []byte(`{"ctx":true}`)
	reply, err := r.client.RequestMsg(req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var cc struct {
		Custom map[string]string `json:"client_custom"`
	}
	if err := json.Unmarshal(reply.Data, &cc); err != nil || cc.Custom["k"] != "v" {
		t.Fatalf("client context: %v %s", err, reply.Data)
	}
	// A caller's valid request id (an async event's, kept across attempts)
	// is the invocation's; an invalid one is replaced by a new id.
	for id, want := range map[string]string{"order-42.retry_1": "order-42.retry_1", "a/b": "", strings.Repeat("x", 65): ""} {
		req := nats.NewMsg(clientsdk.LambdaSubject("ctx"))
		req.Header.Set(clientsdk.HeaderRequestID, id)
		req.Data = []byte(`{"ctx":true}`)
		reply, err := r.client.RequestMsg(req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(reply.Data, &c); err != nil {
			t.Fatal(err)
		}
		if (want != "" && c.RequestID != want) || (want == "" && (c.RequestID == id || len(c.RequestID) != 36)) {
			t.Errorf("request id header %q: the function saw %q", id, c.RequestID)
		}
	}
	st, warm, _ := r.m.Stats("ctx")
	if st.ColdStarts != 1 || warm != 1 {
		t.Fatalf("stats %+v warm %d: want one worker reused", st, warm)
	}
}

// Runtime API status codes, checked by a bootstrap speaking raw HTTP.
func TestRuntimeAPIStatusCodes(t *testing.T) {
	r := newRig(t)
	r.deployGo("raw", rawPkg, nil)
	var first map[string]string
	if err := json.Unmarshal([]byte(r.mustInvoke("raw", `{"a":1}`)), &first); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"bogus_response": "400", "content_length": "7", "body": `{"a":1}`} {
		if first[k] != want {
			t.Errorf("%s = %q, want %q (all: %v)", k, first[k], want, first)
		}
	}
	for _, k := range []string{"deadline", "deadline_dart", "arn", "arn_dart", "trace"} {
		if first[k] == "" {
			t.Errorf("header %s missing (all: %v)", k, first)
		}
	}
	if first["deadline"] != first["deadline_dart"] || strings.Trim(first["deadline"], "0123456789") != "" {
		t.Errorf("deadline headers %q / %q are not the same integer", first["deadline"], first["deadline_dart"])
	}
	var second map[string]string
	if err := json.Unmarshal([]byte(r.mustInvoke("raw", `{}`)), &second); err != nil {
		t.Fatal(err)
	}
	if second["again_response"] != "403" || second["again_error"] != "403" || second["response_status"] != "202" {
		t.Fatalf("second = %v", second)
	}
	// An error posted with a raw body and the error-type header.
	_, e := r.invoke("raw", `{"fail":true}`)
	wantCode(t, e, 500)
	if e.Type != "RawFailure" || e.Message != "raw failure" {
		t.Fatalf("error = %+v", e)
	}
}

// Function errors and panics come back as 500 with the function's errorType.
func TestFunctionErrorAndPanic(t *testing.T) {
	r := newRig(t)
	r.deployGo("hello", helloPkg, nil)
	pid := r.pid("hello")
	_, e := r.invoke("hello", map[string]any{"error": "nope"})
	wantCode(t, e, 500)
	if e.Type != "HelloError" || e.Message != "nope" {
		t.Fatalf("error = %+v", e)
	}
	if p := r.pid("hello"); p != pid {
		t.Fatalf("a returned error replaced the worker: pid %d then %d", pid, p)
	}
	_, e = r.invoke("hello", map[string]any{"panic": "kaboom"})
	wantCode(t, e, 500)
	if e.Type != "BoomError" || e.Message != "kaboom" {
		t.Fatalf("panic = %+v", e)
	}
	// aws-lambda-go exits after a panic; the next request gets a new worker.
	if p := r.pid("hello"); p == pid {
		t.Fatalf("same pid %d after a panic", p)
	}
}

// An init error is returned to the first invocation.
func TestInitError(t *testing.T) {
	r := newRig(t)
	r.deployGo("bad", helloPkg, nil, "HELLO_INIT_ERROR=1")
	_, e := r.invoke("bad", "x")
	wantCode(t, e, 500)
	if e.Type != "InitFailed" || e.Message != "bad config" {
		t.Fatalf("init error = %+v", e)
	}
	// No worker loops: nothing left once it exited.
	testutil.WaitFor(t, 5*time.Second, "no worker left", func() bool { return r.warm("bad") == 0 })
}

// A bootstrap that cannot start answers 502 instead of hanging.
func TestStartFailure(t *testing.T) {
	r := newRig(t)
	if err := r.deploy(spec(t, "missing", 1, nil), lambdas.Command{Path: "/nonexistent/bootstrap"}); err != nil {
		t.Fatal(err)
	}
	_, e := r.invoke("missing", "x")
	wantCode(t, e, 502)
	// A bootstrap that exits at once fails the request it was started for.
	if err := r.deploy(spec(t, "exits", 1, nil), lambdas.Command{Path: "/bin/sh", Args: []string{"-c", "echo broken >&2; exit 3"}}); err != nil {
		t.Fatal(err)
	}
	_, e = r.invoke("exits", "x")
	wantCode(t, e, 502)
	if !strings.Contains(e.Message, "exit code 3") || !strings.Contains(e.Message, "broken") {
		t.Fatalf("error = %+v", e)
	}
}

// A bootstrap that never asks for an event is killed after the init timeout
// and the request it was started for gets 502, not a hang.
func TestInitTimeout(t *testing.T) {
	r := newRig(t, lambdas.WithInitTimeout(300*time.Millisecond))
	s := spec(t, "stuck", 1, func(l *clientsdk.LambdaSpec) { l.Timeout = clientsdk.Duration(2 * time.Second) })
	if err := r.deploy(s, lambdas.Command{Path: "/bin/sleep", Args: []string{"30"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, e := r.invoke("stuck", "x")
	if e == nil || e.Code != 502 || e.Type != lambdas.TypeStart || time.Since(start) > 1900*time.Millisecond {
		t.Fatalf("stuck bootstrap: %v after %s", e, time.Since(start))
	}
	testutil.WaitFor(t, 5*time.Second, "the stuck worker is killed", func() bool { return r.warm("stuck") == 0 })
}

// 50 concurrent requests to a cold lambda with MaxWorkers 4: all answered,
// at most 4 workers ever started.
func TestColdConcurrencyBounded(t *testing.T) {
	r := newRig(t)
	r.deployGo("hello", helloPkg, func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 4 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	pids := map[string]int{}
	errs := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, e := r.invoke("hello", map[string]any{"pid": true, "sleep_ms": 20})
			mu.Lock()
			defer mu.Unlock()
			if e != nil {
				errs++
				t.Errorf("request failed: %v", e)
				return
			}
			pids[string(b)]++
		}()
	}
	wg.Wait()
	st, _, _ := r.m.Stats("hello")
	if errs != 0 || len(pids) > 4 || len(pids) == 0 || st.ColdStarts > 4 || r.countEvents(clientsdk.EventColdStart) > 4 {
		t.Fatalf("errors %d, pids %v, cold starts %d (events %d): want 0 errors and at most 4 workers",
			errs, pids, st.ColdStarts, r.countEvents(clientsdk.EventColdStart))
	}
	if st.Invocations != 50 || st.P50 <= 0 || st.P99 < st.P50 {
		t.Fatalf("stats = %+v", st)
	}
	t.Logf("50 cold requests served by %d workers: %v; p50 %s p99 %s", len(pids), pids, st.P50.D(), st.P99.D())
}

// With Queue 8 and a slow handler, the excess gets 429 at once, not a hang.
func TestQueueFullThrottles(t *testing.T) {
	r := newRig(t)
	r.deployGo("slow", helloPkg, func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 8 })
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, throttled := 0, 0
	var slowest429 time.Duration
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, e := r.invoke("slow", map[string]any{"sleep_ms": 300})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case e == nil:
				ok++
			case e.Code == 429:
				throttled++
				slowest429 = max(slowest429, time.Since(start))
				if e.Type != lambdas.TypeThrottled {
					t.Errorf("429 type %q", e.Type)
				}
			default:
				t.Errorf("unexpected error %v", e)
			}
		}()
	}
	wg.Wait()
	if ok != 9 || throttled != 11 {
		t.Fatalf("%d answered, %d throttled: want 9 (1 running + 8 queued) and 11", ok, throttled)
	}
	if slowest429 > 500*time.Millisecond {
		t.Fatalf("a 429 took %s", slowest429)
	}
	st, _, _ := r.m.Stats("slow")
	if st.Throttled != 11 {
		t.Fatalf("stats = %+v", st)
	}
}

// A timeout answers 504, kills the worker, and the next request gets a new one.
func TestTimeoutKillsAndReplaces(t *testing.T) {
	r := newRig(t)
	r.deployGo("slow", helloPkg, func(l *clientsdk.LambdaSpec) { l.Timeout = clientsdk.Duration(300 * time.Millisecond) })
	sleepers := r.watchSleepers("slow")
	start := time.Now()
	_, e := r.invoke("slow", map[string]any{"sleep_ms": 10000})
	took := time.Since(start)
	wantCode(t, e, 504)
	if e.Type != lambdas.TypeTimedOut || took > 3*time.Second {
		t.Fatalf("timeout error %+v after %s", e, took)
	}
	old := <-sleepers
	testutil.WaitFor(t, 5*time.Second, "the timed-out worker is killed", func() bool { return !alive(old) })
	if p := r.pid("slow"); p == old {
		t.Fatalf("the timed-out worker %d served again", p)
	}
	st, _, _ := r.m.Stats("slow")
	if st.Timeouts != 1 || st.ColdStarts != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

// A worker killed with SIGKILL mid-request answers 502 within 100 ms.
func TestWorkerKilledMidRequest(t *testing.T) {
	r := newRig(t)
	r.deployGo("victim", helloPkg, nil)
	_, lat, pid := r.killMidRequest("victim")
	if lat > 100*time.Millisecond {
		t.Fatalf("502 took %s after SIGKILL (limit 100ms)", lat)
	}
	if p := r.pid("victim"); p == pid {
		t.Fatal("dead pid served")
	}
}

// A response over 6 MiB gets 413 (the runtime sees 413 too and exits); 6 MiB passes.
func TestResponseTooLarge(t *testing.T) {
	r := newRig(t)
	r.deployGo("big", helloPkg, nil)
	b, e := r.invoke("big", map[string]any{"huge": 6 << 20})
	if e != nil || len(b) != 6<<20 {
		t.Fatalf("6 MiB response: %d bytes, %v", len(b), e)
	}
	_, e = r.invoke("big", map[string]any{"huge": 6<<20 + 200})
	wantCode(t, e, 413)
	if e.Type != lambdas.TypeTooLarge {
		t.Fatalf("413 type %q", e.Type)
	}
	if got := r.mustInvoke("big", "again"); got != "Hello, again!" {
		t.Fatalf("after 413: %q", got)
	}
}

// A message without a reply subject is an async ("Event") invocation: it runs
// and its result is dropped.
func TestAsyncInvoke(t *testing.T) {
	r := newRig(t)
	r.deployGo("async", helloPkg, nil)
	for i := 0; i < 3; i++ {
		if err := r.client.Publish(clientsdk.LambdaSubject("async"), []byte("fire")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "3 async invocations", func() bool {
		st, _, _ := r.m.Stats("async")
		return st.Invocations == 3 && st.Errors == 0
	})
}

// A request whose reply subject is not an inbox is refused before it runs
// (no worker starts), and counted; the Manager answers over its reply
// connection only.
func TestForeignReplySubjectRefused(t *testing.T) {
	r := newRig(t)
	r.deployGo("hello", helloPkg, nil)
	sub, err := r.client.SubscribeSync("victim.>")
	if err != nil {
		t.Fatal(err)
	}
	for _, reply := range []string{"victim.x", "$JS.API.INFO", "_INBOX.*"} {
		if err := r.client.PublishRequest("lambda.hello", reply, []byte("world")); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 5*time.Second, "three refusals", func() bool {
		st, _, _ := r.m.Stats("hello")
		return st.RefusedReplies == 3
	})
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("a lambda answered a foreign reply subject: %q", m.Data)
	}
	if st, _, _ := r.m.Stats("hello"); st.ColdStarts != 0 || st.Invocations != 0 {
		t.Fatalf("a refused request ran: %+v", st)
	}
	if got := r.mustInvoke("hello", "world"); got != "Hello, world!" {
		t.Fatalf("honest request: %q", got)
	}
}

// An event over 6 MiB is answered 413 and never run.
func TestOversizedEventRefused(t *testing.T) {
	r := newRig(t)
	r.deployGo("hello", helloPkg, nil)
	_, e := r.invoke("hello", strings.Repeat("x", lambdas.MaxEventBytes+1))
	wantCode(t, e, 413)
	if st, _, _ := r.m.Stats("hello"); st.ColdStarts != 0 {
		t.Fatalf("an oversized event started a worker: %+v", st)
	}
}
