package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"golang.org/x/net/websocket"
)

// loadResult is what a client loop saw.
type loadResult struct {
	ok, failed int64
	versions   map[string]int64 // "version=N" → answers
	failures   map[string]int   // why requests failed
	last       []string         // the last answer of each client
}

// runLoad sends GET url from 8 clients with keep-alive until stop is
// closed and at least min requests were answered (or failed).
func runLoad(url string, min int64, stop <-chan struct{}) loadResult {
	var ok, failed atomic.Int64
	var mu sync.Mutex
	res := loadResult{versions: map[string]int64{}, failures: map[string]int{}, last: make([]string, 8)}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					if ok.Load()+failed.Load() >= min {
						return
					}
				default:
				}
				resp, err := client.Get(url)
				body := ""
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					body = string(b)
					if resp.StatusCode != 200 {
						err = fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(body))
					}
				}
				mu.Lock()
				if err != nil {
					failed.Add(1)
					res.failures[err.Error()]++
				} else {
					ok.Add(1)
					res.versions[strings.Fields(body)[0]]++
					res.last[c] = strings.Fields(body)[0]
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.ok, res.failed = ok.Load(), failed.Load()
	return res
}

// underLoad runs op while 8 clients hammer url, and returns what they saw.
func underLoad(t *testing.T, url string, op func()) loadResult {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan loadResult)
	go func() { done <- runLoad(url, 2000, stop) }()
	time.Sleep(200 * time.Millisecond) // the clients are busy before op begins
	op()
	close(stop)
	res := <-done
	t.Logf("%d answered, %d failed, versions %v, failures %v", res.ok, res.failed, res.versions, res.failures)
	return res
}

func instancePIDs(t *testing.T, s *server, app string) map[int]int {
	out := map[int]int{}
	for _, in := range listJSON(t, s)[app].Instances {
		out[in.Instance] = in.PID
	}
	return out
}

// TestGatewayRoutesAndRollouts: `-j 4 --http /` over two nodes behind one
// address, with a client loop of at least 2,000 requests through a
// restart, a re-push, a kill -9 of a worker, a version that never gets
// ready and a drain; then a WebSocket echo, a 100 MiB stream and a health
// check.
func TestGatewayRoutesAndRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("gateway rollout test skipped in -short mode")
	}
	web := testutil.BuildGo(t, "./internal/testutil/workers/web")
	s := startServe(t, testutil.TempDir(t), "--name", "gw1")
	startRunnerWith(t, nil, "--server", s.natsURL, "--name", "gw2", "--data", testutil.TempDir(t), "--label", "node=gw2")
	testutil.WaitFor(t, 20*time.Second, "node gw2 to join", func() bool {
		out, _ := s.try("nodes", "--json")
		return strings.Contains(out, `"id": "gw2"`)
	})
	push := func(version string, extra ...string) (string, int) {
		args := append([]string{"push", "--name", "gwweb", "-j", "4", "--http", "/", "--env", "WEB_VERSION=" + version}, extra...)
		return s.exitCode(append(args, "--", web)...)
	}
	if out, code := push("1"); code != 0 {
		t.Fatalf("push: exit %d\n%s", code, out)
	}
	nodes := map[string]bool{}
	for _, in := range listJSON(t, s)["gwweb"].Instances {
		nodes[in.Node] = true
		if !in.Ready || in.Address == "" {
			t.Fatalf("push returned before every instance was ready: %+v", in)
		}
	}
	if len(nodes) != 2 {
		t.Fatalf("4 instances on %d nodes, want both", len(nodes))
	}
	url := s.httpURL + "/"

	t.Run("restart", func(t *testing.T) {
		before := instancePIDs(t, s, "gwweb")
		res := underLoad(t, url, func() { s.dartup("restart", "gwweb") })
		after := instancePIDs(t, s, "gwweb")
		if res.failed != 0 {
			t.Fatalf("%d requests failed during the restart: %v", res.failed, res.failures)
		}
		for i, pid := range before {
			if after[i] == pid || after[i] == 0 {
				t.Fatalf("instance %d: pid %d before, %d after the restart", i, pid, after[i])
			}
		}
	})
	t.Run("re-push", func(t *testing.T) {
		res := underLoad(t, url, func() {
			if out, code := push("2"); code != 0 {
				t.Errorf("push of version 2: exit %d\n%s", code, out)
			}
		})
		if res.failed != 0 || res.versions["version=2"] == 0 {
			t.Fatalf("re-push: %d failed, versions %v", res.failed, res.versions)
		}
		for _, v := range res.last {
			if v != "version=2" {
				t.Fatalf("after the push returned, a client still got %s", v)
			}
		}
	})
	t.Run("kill -9 of a worker", func(t *testing.T) {
		before := instancePIDs(t, s, "gwweb")
		victim := before[0]
		res := underLoad(t, url, func() {
			_ = syscall.Kill(victim, syscall.SIGKILL)
			testutil.WaitFor(t, 20*time.Second, "instance 0 to be replaced and ready", func() bool {
				in := listJSON(t, s)["gwweb"].Instances[0]
				return in.PID != victim && in.PID != 0 && in.Ready
			})
		})
		// Only what was in flight on the killed worker may fail: at most one
		// request per client.
		if res.failed > 8 {
			t.Fatalf("%d requests failed after one worker was killed: %v", res.failed, res.failures)
		}
	})
	t.Run("a version that never gets ready", func(t *testing.T) {
		var out string
		var code int
		res := underLoad(t, url, func() { out, code = push("3", "--env", "WEB_NEVER_READY=1", "--ready-timeout", "2s") })
		if code == 0 || !strings.Contains(out, "did not get ready") {
			t.Fatalf("push of a version that never gets ready: exit %d\n%s", code, out)
		}
		if res.failed != 0 || res.versions["version=3"] != 0 {
			t.Fatalf("during the failed rollout: %d failed, versions %v", res.failed, res.versions)
		}
		a := listJSON(t, s)["gwweb"]
		if a.Running != 4 || !strings.Contains(a.Message, "did not get ready") {
			t.Fatalf("after the failed rollout: %s - %s (%d running)", a.State, a.Message, a.Running)
		}
		if out, code := push("2"); code != 0 { // back to a good version for what follows
			t.Fatalf("push of version 2 again: exit %d\n%s", code, out)
		}
	})
	t.Run("a version that gets ready, then crashes", func(t *testing.T) {
		var out string
		var code int
		res := underLoad(t, url, func() { out, code = push("4", "--env", "WEB_EXIT_AFTER=300ms") })
		if code == 0 {
			t.Fatalf("push of a version that crashes after 300 ms: exit 0\n%s", out)
		}
		if res.failed != 0 || res.versions["version=4"] != 0 {
			t.Fatalf("during the failed rollout: %d failed, versions %v\n%s", res.failed, res.versions, out)
		}
		if out, code := push("2"); code != 0 {
			t.Fatalf("push of version 2 again: exit %d\n%s", code, out)
		}
	})
	t.Run("fixed ports: restart", func(t *testing.T) {
		// Both instances on gw2: the two nodes share this machine, and a
		// node that looks dead under load would have its fixed ports taken
		// over by the other one while its workers still hold them.
		s.dartup("push", "--name", "gwfixed", "-j", "2", "--port", strconv.Itoa(freePortRun(t, 2)), "--http", "/fixed", "--http-strip-prefix",
			"--constraint", "node=gw2", "--", web)
		res := underLoad(t, s.httpURL+"/fixed", func() { s.dartup("restart", "gwfixed") })
		if res.failed != 0 {
			t.Fatalf("%d requests failed while restarting a fixed-port app: %v", res.failed, res.failures)
		}
		res = underLoad(t, s.httpURL+"/fixed", func() { time.Sleep(time.Second) })
		if res.failed != 0 {
			t.Fatalf("%d requests failed after restarting a fixed-port app: %v", res.failed, res.failures)
		}
		s.dartup("remove", "gwfixed")
		// A second remove (a retry after a lost answer) says so and succeeds.
		if out := s.dartup("remove", "gwfixed"); !strings.Contains(out, "nothing to remove") {
			t.Fatalf("second remove: %s", out)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		ws, err := websocket.Dial(strings.Replace(s.httpURL, "http", "ws", 1)+"/ws", "", s.httpURL)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		for i := range 3 {
			msg := fmt.Sprintf("hello %d", i)
			if err := websocket.Message.Send(ws, msg); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
				t.Fatalf("echo: %q %v, want %q", got, err, msg)
			}
		}
	})
	t.Run("100 MiB stream in constant memory", func(t *testing.T) {
		resp, err := http.Get(s.httpURL + "/stream?mb=100")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		base := rssOf(s.cmd.Process.Pid)
		var n, peak int64
		buf := make([]byte, 1<<20)
		for {
			k, err := resp.Body.Read(buf)
			n += int64(k)
			if n%(8<<20) < int64(k) {
				peak = max(peak, rssOf(s.cmd.Process.Pid))
			}
			if err != nil {
				break
			}
		}
		if n != 100<<20 {
			t.Fatalf("streamed %d bytes, want %d", n, 100<<20)
		}
		if grew := peak - base; grew > 32<<20 {
			t.Fatalf("serve's memory grew by %d MiB while streaming 100 MiB", grew>>20)
		}
	})
	t.Run("drain a node", func(t *testing.T) {
		res := underLoad(t, url, func() { s.dartup("nodes", "drain", "gw2", "--wait", "60s") })
		if res.failed != 0 {
			t.Fatalf("%d requests failed during the drain: %v", res.failed, res.failures)
		}
		for _, in := range listJSON(t, s)["gwweb"].Instances {
			if in.Node != "gw1" || !in.Ready {
				t.Fatalf("after the drain: %+v", in)
			}
		}
	})
	t.Run("health", func(t *testing.T) {
		s.dartup("push", "--name", "gwsick", "--http", "/shop", "--health", "http:/healthz", "--health-interval", "200ms",
			"--health-failures", "2", "--", web)
		in := listJSON(t, s)["gwsick"].Instances[0]
		resp, err := http.Post("http://"+in.Address+"/sick", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		testutil.WaitFor(t, 20*time.Second, "the unhealthy instance to be replaced", func() bool {
			now := listJSON(t, s)["gwsick"].Instances[0]
			return now.PID != in.PID && now.Ready && now.Restarts == 1
		})
		if out := s.dartup("info", "gwsick"); !strings.Contains(out, "unhealthy") {
			t.Fatalf("no unhealthy event:\n%s", out)
		}
		// The longer route wins: /shop/x goes to gwsick, / to gwweb.
		body := get(t, s.httpURL+"/shop/x")
		if !strings.Contains(body, "path=/shop/x") || !strings.Contains(body, "version= ") {
			t.Fatalf("/shop/x answered %q", body)
		}
	})
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// rssOf returns the resident memory of pid in bytes.
func rssOf(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestFailedRolloutSurvivesNodeDeath: after a rollout failed, an instance
// re-placed because its node died starts the version that runs, not the
// one that failed.
func TestFailedRolloutSurvivesNodeDeath(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode")
	}
	web := testutil.BuildGo(t, "./internal/testutil/workers/web")
	s := startServe(t, testutil.TempDir(t), "--name", "fr1")
	r := startRunnerWith(t, nil, "--server", s.natsURL, "--name", "fr2", "--data", testutil.TempDir(t))
	testutil.WaitFor(t, 20*time.Second, "node fr2 to join", func() bool {
		out, _ := s.try("nodes", "--json")
		return strings.Contains(out, `"id": "fr2"`)
	})
	push := func(extra ...string) (string, int) {
		args := append([]string{"push", "--name", "frweb", "-j", "2", "--http", "/", "--ready-timeout", "5s"}, extra...)
		return s.exitCode(append(args, "--", web)...)
	}
	if out, code := push("--env", "WEB_VERSION=1"); code != 0 {
		t.Fatalf("push: exit %d\n%s", code, out)
	}
	if out, code := push("--env", "WEB_VERSION=2", "--env", "WEB_NEVER_READY=1"); code == 0 {
		t.Fatalf("push of a version that never gets ready: exit 0\n%s", out)
	}
	r.kill9()
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.try("info", "frweb", "--json")
			t.Logf("info frweb at the end:\n%s", out)
		}
	})
	testutil.WaitFor(t, 30*time.Second, "both instances ready on fr1", func() bool {
		a := listJSON(t, s)["frweb"]
		ready := 0
		for _, in := range a.Instances {
			if in.Node == "fr1" && in.Ready && in.State == clientsdk.StateRunning {
				ready++
			}
		}
		return ready == 2
	})
	for range 20 {
		if body := get(t, s.httpURL+"/"); !strings.HasPrefix(body, "version=1 ") {
			t.Fatalf("after the node died, the gateway answered %q, want version 1", body)
		}
	}
}
