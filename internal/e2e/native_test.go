package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

var nativeSleeping = regexp.MustCompile(`sleeping pid=(\d+)`)

// TestNativeLambdaThroughTheProduct pushes a Go worker built on
// app.ServeLambda with --protocol nats into a real `dartup serve` (whose
// runner gives each worker a token of its own) and calls it with the stock
// `nats req` and the HTTP gateway: result, function error, 413, timeout
// (504, the worker replaced), kill -9 (502 at once), 429 beyond the
// concurrency limit and queue, and keep-warm, then dead.
func TestNativeLambdaThroughTheProduct(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	natsCLI := testutil.NATSCLI(t)
	req := func(data string) (string, error) {
		out, err := exec.Command(natsCLI, "--server", s.natsURL, "req", "lambda.fast", data, "--raw", "--timeout", "10s").CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	bin := testutil.BuildGo(t, "./internal/testutil/workers/lambdanative")
	s.dartup("push", "--lambda", "--name", "fast", "--protocol", "nats", "--http-event", "raw",
		"--max-workers", "1", "--queue", "1", "--timeout", "1s", "--keep-warm", "3s", bin)
	if out, err := req("world"); err != nil || out != "Hello, world!" {
		t.Fatalf("nats req lambda.fast: %v %q", err, out)
	}
	// serve's runner offers direct mode (the worker takes its requests).
	if out, err := req(`{"env":"` + clientsdk.EnvLambdaDirect + `"}`); err != nil || out != clientsdk.LambdaQueueGroup {
		t.Fatalf("%s = %q, %v", clientsdk.EnvLambdaDirect, out, err)
	}
	if code, _, body := call(t, "POST", s.httpURL+"/fast", "gateway"); code != 200 || body != "Hello, gateway!" {
		t.Fatalf("POST /fast: %d %q", code, body)
	}
	if out, _ := req(`{"error":"no such user"}`); !strings.Contains(out, "500") || !strings.Contains(out, "NativeError") {
		t.Fatalf("a function error printed %q", out)
	}
	if code, _, body := call(t, "POST", s.httpURL+"/fast", `{"error":"no such user"}`); code != 500 || !strings.Contains(body, "NativeError") {
		t.Fatalf("a function error through the gateway: %d %q", code, body)
	}
	if code, _, body := call(t, "POST", s.httpURL+"/fast", fmt.Sprintf(`{"huge":%d}`, 6<<20+200)); code != 413 || !strings.Contains(body, clientsdk.TypeResponseTooLarge) {
		t.Fatalf("a result over 6 MiB through the gateway: %d %.200q", code, body)
	}

	nc, err := nats.Connect(s.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sleepers := make(chan int, 16)
	logs, err := nc.Subscribe(clientsdk.LogFilter("fast", -1), func(m *nats.Msg) {
		if p := nativeSleeping.FindSubmatch(m.Data); p != nil {
			n, _ := strconv.Atoi(string(p[1]))
			sleepers <- n
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Unsubscribe()
	_ = nc.Flush()
	pid := func() int {
		out, err := req(`{"pid":true}`)
		n, aerr := strconv.Atoi(out)
		if err != nil || aerr != nil {
			t.Fatalf("pid: %v %q", err, out)
		}
		return n
	}

	// Timeout: 504 and a new worker.
	if out, _ := req(`{"sleep_ms":3000}`); !strings.Contains(out, "504") {
		t.Fatalf("a timeout printed %q", out)
	}
	old := <-sleepers
	testutil.WaitFor(t, 5*time.Second, "the timed-out worker is killed", func() bool { return syscall.Kill(old, 0) != nil })
	if p := pid(); p == old {
		t.Fatal("the timed-out worker served again")
	}

	// kill -9 mid-request: the gateway answers 502 at once.
	type answer struct {
		code int
		at   time.Time
	}
	got := make(chan answer, 1)
	go func() {
		code, _, _ := tryCall("POST", s.httpURL+"/fast", `{"sleep_ms":800}`)
		got <- answer{code, time.Now()}
	}()
	victim := <-sleepers
	killed := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a := <-got
	t.Logf("502 %s after SIGKILL", a.at.Sub(killed))
	if a.code != 502 || a.at.Sub(killed) > 700*time.Millisecond {
		t.Fatalf("kill -9 mid-request: HTTP %d %s after the kill", a.code, a.at.Sub(killed))
	}

	// One worker, one queued request, the third is throttled at once.
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := nc.Request("lambda.fast", []byte(`{"sleep_ms":300}`), 10*time.Second)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				codes[-1]++
			case clientsdk.ErrorFromMsg(m) != nil:
				codes[clientsdk.ErrorFromMsg(m).Code]++
			default:
				codes[200]++
			}
		}()
	}
	wg.Wait()
	if codes[200] != 2 || codes[429] != 1 {
		t.Fatalf("3 requests on 1 worker with a queue of 1: %v", codes)
	}

	// Keep-warm, then dead.
	if out := s.dartup("list"); !strings.Contains(out, " • fast - alive - 1 warm") {
		t.Fatalf("list: %q", out)
	}
	testutil.WaitFor(t, 15*time.Second, "fast to be dead after its keep-warm", func() bool {
		out, _ := s.try("list")
		return strings.Contains(out, " • fast - dead")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hreq, _ := http.NewRequestWithContext(ctx, "POST", s.httpURL+"/fast", strings.NewReader("again"))
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a dead lambda's next request: %v %v", err, resp)
	}
	resp.Body.Close()
}
