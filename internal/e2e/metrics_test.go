package e2e

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	dto "github.com/prometheus/client_model/go"
)

// TestMetricsThroughTheProduct scrapes a real `dartup serve
// --require-password --metrics-addr` with a daemon and a lambda: 401
// without credentials and 200 with them on both listeners; after 10
// invocations the lambda's counter and histogram say 10; after a kill -9
// of the daemon's worker its restart counter moves and the exit is counted
// as SIGKILL; and docs/metrics.md lists exactly the dartup_* metrics the
// server exposes.
func TestMetricsThroughTheProduct(t *testing.T) {
	const user, pw = "scraper", "metrics-pass-4c1d9e"
	dir := testutil.TempDir(t)
	setPassword(t, dir, user, pw)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", freePorts(t, 1)[0])
	s := startServe(t, dir, "--require-password", "--metrics-addr", strings.TrimSuffix(strings.TrimPrefix(metricsURL, "http://"), "/metrics"))
	s.env = []string{"DARTUP_USER=" + user, "DARTUP_PASSWORD=" + pw}
	s.dartup("push", "--name", "mweb", "--http", "/mweb", testutil.BuildGo(t, "./internal/testutil/workers/web"))
	s.dartup("push", "--name", "mhello", "--lambda", testutil.BuildGo(t, "./internal/testutil/workers/lambdahello"))

	for _, url := range []string{s.httpURL + "/metrics", metricsURL} {
		if code, _ := testutil.Scrape(t, url, "", ""); code != http.StatusUnauthorized {
			t.Fatalf("%s without credentials: %d, want 401", url, code)
		}
		if code, _ := testutil.Scrape(t, url, user, pw); code != 200 {
			t.Fatalf("%s with Basic auth: %d, want 200", url, code)
		}
	}

	// The lambda is hosted once its node reports it; then 10 invocations.
	testutil.WaitFor(t, 20*time.Second, "mhello hosted and mweb running", func() bool {
		apps := listJSON(t, s)
		return len(apps["mhello"].Instances) > 0 && apps["mweb"].Running == 1
	})
	for i := 0; i < 10; i++ {
		if code, body := authGet(t, s.httpURL+"/mhello", user, pw); code != 200 {
			t.Fatalf("GET /mhello: %d %s", code, body)
		}
	}
	scrape := func() map[string]*dto.MetricFamily {
		code, fams := testutil.Scrape(t, metricsURL, user, pw)
		if code != 200 {
			t.Fatalf("scrape: %d", code)
		}
		return fams
	}
	testutil.WaitFor(t, 10*time.Second, "10 invocations of mhello in /metrics", func() bool {
		fams := scrape()
		inv, _ := testutil.Sample(fams, "dartup_lambda_invocations_total", map[string]string{"app": "mhello", "result": "ok"})
		hist, _ := testutil.Sample(fams, "dartup_lambda_duration_seconds", map[string]string{"app": "mhello"})
		return inv == 10 && hist == 10
	})

	// kill -9 of the daemon's worker: a restart, an exit by SIGKILL.
	pid := listJSON(t, s)["mweb"].Instances[0].PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	web := map[string]string{"app": "mweb", "index": "0"}
	var fams map[string]*dto.MetricFamily
	testutil.WaitFor(t, 20*time.Second, "mweb's restart and its SIGKILL exit in /metrics", func() bool {
		fams = scrape()
		restarts, _ := testutil.Sample(fams, "dartup_instance_restarts_total", web)
		killed, _ := testutil.Sample(fams, "dartup_instance_exits_total", map[string]string{"app": "mweb", "index": "0", "code": "SIGKILL"})
		running, _ := testutil.Sample(fams, "dartup_instance_state", map[string]string{"app": "mweb", "index": "0", "state": "running"})
		return restarts >= 1 && killed == 1 && running == 1
	})

	// Every dartup_* metric a live server exposes is documented, and every
	// documented one is exposed (this server has each kind of series now).
	var exposed []string
	for name := range fams {
		if strings.HasPrefix(name, "dartup_") {
			exposed = append(exposed, name)
		}
	}
	var documented []string
	for name := range testutil.DocumentedMetrics(t) {
		documented = append(documented, name)
	}
	slices.Sort(exposed)
	slices.Sort(documented)
	if !slices.Equal(exposed, documented) {
		t.Fatalf("docs/metrics.md lists\n%v\nthe server exposes\n%v", documented, exposed)
	}
	for _, f := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[f]; !ok {
			t.Errorf("no %s", f)
		}
	}
	if a := listJSON(t, s)["mweb"]; a.State != clientsdk.AppAlive {
		t.Fatalf("mweb after the kill: %+v", a)
	}
}

// authGet sends GET url with Basic auth and returns the status and body.
func authGet(t *testing.T, url, user, pw string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
