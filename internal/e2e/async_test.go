package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

const lambdaAsyncPkg = "./internal/testutil/workers/lambdaasync"

// callsDir is a folder the lambdaasync workers of every node record their
// calls in (they may run as users of their own).
func callsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testutil.TempDir(t), "calls")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o777)
	return dir
}

// callLines returns the lines calls.log holds for request id: "NODE
// start|ok|fail".
func callLines(dir, id string) []string {
	f, err := os.Open(filepath.Join(dir, "calls.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p := strings.Fields(sc.Text()); len(p) == 4 && p[0] == id {
			out = append(out, p[1]+" "+p[3])
		}
	}
	return out
}

// okLines counts the successful calls in calls.log.
func okLines(dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "calls.log"))
	return strings.Count(string(b), " ok\n")
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// TestAsyncEventSurvivesNodeKill: `kill -9` of the runner node that runs an
// async event mid-invocation; the event is delivered again and completes
// on the other node, with the same request id.
func TestAsyncEventSurvivesNodeKill(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	s := startServe(t, testutil.TempDir(t), "--name", "s1", "--no-runner")
	runners := map[string]*runnerProc{
		"r1": startRunner(t, []string{s.natsURL}, "r1", testutil.TempDir(t)),
		"r2": startRunner(t, []string{s.natsURL}, "r2", testutil.TempDir(t)),
	}
	testutil.WaitFor(t, 30*time.Second, "2 runner nodes", func() bool {
		out, err := s.try("nodes", "--json")
		var nodes []clientsdk.Node
		return err == nil && json.Unmarshal([]byte(out), &nodes) == nil && len(nodes) == 2
	})
	dir := callsDir(t)
	s.dartup("push", "--lambda", "--name", "job", "--env", "ASYNC_DIR="+dir, "--timeout", "2s",
		"--retry-backoff", "100ms", testutil.BuildGo(t, lambdaAsyncPkg))
	// Both nodes host it and answer.
	testutil.WaitFor(t, 30*time.Second, "both nodes answering job", func() bool {
		seen := map[string]bool{}
		for range 12 {
			out, err := s.try("invoke", "job")
			var r struct{ Node string }
			if err == nil && json.Unmarshal([]byte(out), &r) == nil {
				seen[r.Node] = true
			}
		}
		return seen["r1"] && seen["r2"]
	})

	id := strings.TrimSpace(s.dartup("invoke", "--async", "job", "--data", `{"sleep_ms":1500}`))
	var first string
	testutil.WaitFor(t, 30*time.Second, "the event to start on a node", func() bool {
		for _, l := range callLines(dir, id) {
			if node, what, _ := strings.Cut(l, " "); what == "start" {
				first = node
				return true
			}
		}
		return false
	})
	killed := time.Now()
	runners[first].kill9()
	other := map[string]string{"r1": "r2", "r2": "r1"}[first]
	// The dispatcher waits for an answer twice the timeout and its slack,
	// then retries after the backoff.
	testutil.WaitFor(t, 60*time.Second, "the event to complete on "+other, func() bool { return hasLine(callLines(dir, id), other+" ok") })
	t.Logf("killed %s mid-invocation; the event completed on %s %s later; calls: %v", first, other, time.Since(killed).Round(time.Millisecond), callLines(dir, id))
	var info clientsdk.AppInfo
	testutil.WaitFor(t, 10*time.Second, "the async stats to settle", func() bool {
		out, err := s.try("info", "job", "--json")
		return err == nil && json.Unmarshal([]byte(out), &info) == nil && info.Async != nil && info.Async.InFlight == 0
	})
	if a := info.Async; a.Retried != 1 || a.DeadLettered != 0 || a.Queued != 0 {
		t.Fatalf("async stats %+v: want the one attempt on the dead node retried", a)
	}
}

// TestAsyncFromTheCommandLine: the ways a user stores and follows async
// events: `dartup invoke --async`, `nats pub`, HTTP with
// X-Amz-Invocation-Type: Event, `dartup info`, and `dartup dlq`.
func TestAsyncFromTheCommandLine(t *testing.T) {
	s := startServe(t, testutil.TempDir(t), "--name", "s1")
	dir := callsDir(t)
	worker := testutil.BuildGo(t, lambdaAsyncPkg)
	push := func(mode string) {
		s.dartup("push", "--lambda", "--name", "mail", "--env", "ASYNC_DIR="+dir, "--env", "ASYNC_MODE="+mode,
			"--retries", "1", "--retry-backoff", "100ms", "--max-event-age", "1h", worker)
	}
	push("fail")
	var r struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(s.dartup("invoke", "--async", "mail", "--data", `{"to":"ada"}`, "--json")), &r); err != nil || !clientsdk.ValidRequestID(r.RequestID) {
		t.Fatalf("invoke --async --json: %v %+v", err, r)
	}
	var l clientsdk.DLQListResponse
	testutil.WaitFor(t, 30*time.Second, "the event in the dead letters", func() bool {
		return json.Unmarshal([]byte(s.dartup("dlq", "ls", "mail", "--json")), &l) == nil && len(l.DeadLetters) == 1
	})
	dl := l.DeadLetters[0]
	if dl.RequestID != r.RequestID || dl.Attempts != 2 || dl.ErrorType != "AsyncTestError" {
		t.Fatalf("dead letter %+v", dl)
	}
	out := s.dartup("dlq", "ls")
	if !strings.Contains(out, r.RequestID) || !strings.Contains(out, "AsyncTestError: failing on purpose") {
		t.Fatalf("dlq ls:\n%s", out)
	}
	out = s.dartup("dlq", "show", strconv.FormatUint(dl.ID, 10))
	if !strings.Contains(out, "Dartup-Attempts: 2") || !strings.Contains(out, `{"to":"ada"}`) {
		t.Fatalf("dlq show:\n%s", out)
	}
	if out := s.dartup("info", "mail"); !strings.Contains(out, "async: retries 1  retry-backoff 100ms  max-event-age 1h0m0s") ||
		!strings.Contains(out, "1 dead-lettered (dartup dlq ls mail)") {
		t.Fatalf("info:\n%s", out)
	}
	push("ok")
	if out := s.dartup("dlq", "redrive", "mail"); !strings.Contains(out, "Redrove 1 dead letters of mail.") {
		t.Fatalf("dlq redrive:\n%s", out)
	}
	testutil.WaitFor(t, 30*time.Second, "the redriven event to run", func() bool { return hasLine(callLines(dir, r.RequestID), "s1 ok") })
	if out := s.dartup("dlq", "ls"); !strings.Contains(out, "No dead letters.") {
		t.Fatalf("dlq ls after the redrive:\n%s", out)
	}

	// The stock nats CLI stores an event by publishing it.
	before := okLines(dir)
	if out, err := exec.Command(testutil.NATSCLI(t), "--server", s.natsURL, "pub", "dartup.async.mail", `{"via":"nats"}`).CombinedOutput(); err != nil {
		t.Fatalf("nats pub: %v\n%s", err, out)
	}
	// HTTP, as Lambda's Invoke with InvocationType Event.
	req, _ := http.NewRequest("POST", s.httpURL+"/mail", strings.NewReader(`{"via":"http"}`))
	req.Header.Set("X-Amz-Invocation-Type", "Event")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	httpID := resp.Header.Get("X-Amzn-RequestId")
	if resp.StatusCode != http.StatusAccepted || !clientsdk.ValidRequestID(httpID) {
		t.Fatalf("POST /mail with Event: %d %q", resp.StatusCode, httpID)
	}
	testutil.WaitFor(t, 30*time.Second, "the HTTP event to run", func() bool { return hasLine(callLines(dir, httpID), "s1 ok") })
	testutil.WaitFor(t, 30*time.Second, "the published event to run", func() bool { return okLines(dir) == before+2 })
	if out := s.dartup("dlq", "purge", "mail"); !strings.Contains(out, "Deleted 0 dead letters of mail.") {
		t.Fatalf("dlq purge:\n%s", out)
	}
	if out, err := s.try("invoke", "--async", "nosuch"); err == nil || !strings.Contains(out, "no lambda named") {
		t.Fatalf("invoke --async of an unknown name: %v\n%s", err, out)
	}
}
