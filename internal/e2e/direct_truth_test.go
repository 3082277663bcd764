package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// lambdaTotals sums a lambda's per-node stats from `dartup list --json`.
func lambdaTotals(t *testing.T, s *server, name string) (st clientsdk.LambdaStats, warm, busy int) {
	t.Helper()
	for _, in := range listJSON(t, s)[name].Instances {
		warm += in.WarmWorkers
		busy += in.BusyWorkers
		if l := in.Lambda; l != nil {
			st.Invocations += l.Invocations
			st.Errors += l.Errors
			st.ColdStarts += l.ColdStarts
			st.Timeouts += l.Timeouts
			st.Throttled += l.Throttled
		}
	}
	return st, warm, busy
}

// TestDirectLambdaTruth: what `dartup list --json` and /metrics say of a
// direct lambda match what ran — fast requests (recorded by their done
// notices), slow ones (took, then done), function errors, gateway and
// async invocations, a worker's exit mid-request (502) — and the lambda answers again after serve restarts
// on the same data dir.
func TestDirectLambdaTruth(t *testing.T) {
	dir := testutil.TempDir(t)
	s := startServe(t, dir)
	bin := testutil.BuildGo(t, "./internal/testutil/workers/lambdanative")
	s.dartup("push", "--lambda", "--name", "dtruth", "--protocol", "nats", "--http-event", "raw",
		"--max-workers", "2", "--keep-warm", "60s", bin)
	const fast, slow, failed = 20, 2, 3
	for i := range fast {
		if code, _, body := call(t, "POST", s.httpURL+"/dtruth", fmt.Sprint("f", i)); code != 200 || body != fmt.Sprintf("Hello, f%d!", i) {
			t.Fatalf("fast %d: %d %q", i, code, body)
		}
	}
	for range slow {
		if code, _, body := call(t, "POST", s.httpURL+"/dtruth", `{"sleep_ms":30}`); code != 200 {
			t.Fatalf("slow: %d %q", code, body)
		}
	}
	for range failed {
		if code, _, body := call(t, "POST", s.httpURL+"/dtruth", `{"error":"nope"}`); code != 500 || !strings.Contains(body, "NativeError") {
			t.Fatalf("error: %d %q", code, body)
		}
	}
	// A worker that dies within the first millisecond of a request (before
	// it would tell dartup it took it) gets its caller 502 at once.
	if code, _, body := call(t, "POST", s.httpURL+"/dtruth", `{"exit":3}`); code != 502 || !strings.Contains(body, "exit code 3") {
		t.Fatalf("a worker's exit mid-request: %d %q", code, body)
	}
	s.dartup("invoke", "--async", "dtruth", "--data", `"async"`)
	const total, errors, cold = fast + slow + failed + 2, failed + 1, 2
	var st clientsdk.LambdaStats
	var warm, busy int
	testutil.WaitFor(t, 15*time.Second, "list --json to count every invocation", func() bool {
		st, warm, busy = lambdaTotals(t, s, "dtruth")
		return st.Invocations >= total
	})
	if st.Invocations != total || st.Errors != errors || st.Timeouts != 0 || st.ColdStarts != cold || warm != 1 || busy != 0 {
		t.Fatalf("list --json after %d sequential invocations (%d errors): %+v, %d warm, %d busy", total, errors, st, warm, busy)
	}
	testutil.WaitFor(t, 10*time.Second, "/metrics to count every invocation", func() bool {
		code, fams := testutil.Scrape(t, s.httpURL+"/metrics", "", "")
		if code != 200 {
			t.Fatalf("scrape: %d", code)
		}
		l := map[string]string{"app": "dtruth"}
		ok, _ := testutil.Sample(fams, "dartup_lambda_invocations_total", map[string]string{"app": "dtruth", "result": "ok"})
		bad, _ := testutil.Sample(fams, "dartup_lambda_invocations_total", map[string]string{"app": "dtruth", "result": "error"})
		hist, _ := testutil.Sample(fams, "dartup_lambda_duration_seconds", l)
		c, _ := testutil.Sample(fams, "dartup_lambda_cold_starts_total", l)
		w, _ := testutil.Sample(fams, "dartup_lambda_warm_workers", l)
		b, _ := testutil.Sample(fams, "dartup_lambda_busy_workers", l)
		t.Logf("metrics: ok %v error %v histogram %v cold %v warm %v busy %v", ok, bad, hist, c, w, b)
		return ok == total-errors && bad == errors && hist == total && c == cold && w == 1 && b == 0
	})

	// serve restarts on the same data dir: the lambda answers again, in
	// direct mode.
	s.stop()
	s2 := startServe(t, dir)
	testutil.WaitFor(t, 30*time.Second, "dtruth to answer after the restart", func() bool {
		code, _, body := tryCall("POST", s2.httpURL+"/dtruth", "again")
		return code == 200 && body == "Hello, again!"
	})
	if code, _, body := call(t, "POST", s2.httpURL+"/dtruth", `{"env":"`+clientsdk.EnvLambdaDirect+`"}`); code != 200 || body != clientsdk.LambdaQueueGroup {
		t.Fatalf("after the restart %s = %d %q", clientsdk.EnvLambdaDirect, code, body)
	}
}

// TestDirectLambdaTruthUnderABurst: a burst of concurrent fast and slow
// requests (passed on, re-published, queued, throttled) leaves books that
// say what the callers got: invocations = answers (200s and function
// errors), throttles = 429s, no worker busy afterwards.
func TestDirectLambdaTruthUnderABurst(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	bin := testutil.BuildGo(t, "./internal/testutil/workers/lambdanative")
	s.dartup("push", "--lambda", "--name", "dburst", "--protocol", "nats",
		"--max-workers", "3", "--queue", "60", "--keep-warm", "60s", bin)
	nc := testutil.Connect(t, s.natsURL)
	if _, err := nc.Request("lambda.dburst", []byte("x"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	const n = 120
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte(fmt.Sprint("b", i))
			switch i % 4 {
			case 1:
				data = []byte(`{"sleep_ms":20}`)
			case 3:
				data = []byte(`{"error":"nope"}`)
			}
			m, err := nc.Request("lambda.dburst", data, 20*time.Second)
			switch {
			case err != nil:
				codes <- -1
			case clientsdk.ErrorFromMsg(m) != nil:
				codes <- clientsdk.ErrorFromMsg(m).Code
			default:
				codes <- 200
			}
		}()
	}
	wg.Wait()
	close(codes)
	got := map[int]uint64{}
	for c := range codes {
		got[c]++
	}
	t.Logf("answers: %v", got)
	if got[-1] != 0 || got[504] != 0 || got[502] != 0 {
		t.Fatalf("a burst of %d: %v", n, got)
	}
	want := clientsdk.LambdaStats{Invocations: 1 + got[200] + got[500], Errors: got[500], Throttled: got[429]}
	var st clientsdk.LambdaStats
	var busy int
	testutil.WaitFor(t, 15*time.Second, "list --json to count the burst", func() bool {
		st, _, busy = lambdaTotals(t, s, "dburst")
		return st.Invocations >= want.Invocations && busy == 0
	})
	if st.Invocations != want.Invocations || st.Errors != want.Errors || st.Throttled != want.Throttled || st.Timeouts != 0 {
		t.Fatalf("list --json after the burst: %+v, want %+v", st, want)
	}
}
