package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// chromium returns the path of Debian's chromium. Without it the test is
// skipped (loudly) on a developer's machine and fails in CI (env CI set),
// where .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const how = "install it with `sudo apt-get install -y --no-install-recommends chromium` (.ci/run does)"
	if os.Getenv("CI") != "" {
		t.Fatalf("no chromium on PATH: the dashboard's browser test needs it; %s", how)
	}
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: no chromium on PATH; %s ***\n\n", t.Name(), how)
	t.Skipf("SKIPPED: no chromium on PATH; %s", how)
	return ""
}

// browser starts a headless Chromium with a fresh profile, kept off the
// network: no background networking, component updates, sync or QUIC.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1100),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// requestLog records the URL of every request the page makes.
type requestLog struct {
	mu   sync.Mutex
	urls []string
}

func (l *requestLog) add(u string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.urls = append(l.urls, u)
}

// offLoopback returns the recorded URLs that are not on a loopback host
// (data: URLs, which never leave the page, excepted).
func (l *requestLog) offLoopback() (all, off []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, raw := range l.urls {
		u, err := url.Parse(raw)
		switch {
		case err == nil && u.Scheme == "data":
		case err == nil && (u.Scheme == "http" || u.Scheme == "https") && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1"):
		default:
			off = append(off, raw)
		}
	}
	return slices.Clone(l.urls), off
}

// until waits (polling in the page every 100 ms) for the JavaScript
// expression js to be true.
func until(t *testing.T, ctx context.Context, timeout time.Duration, what, js string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		t.Fatalf("the dashboard did not show %s within %s: %v", what, timeout, err)
	}
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// runningPID waits until instance index of app runs with a pid other than
// not, and returns that pid.
func runningPID(t *testing.T, s *server, app string, index, not int) int {
	t.Helper()
	pid := 0
	testutil.WaitFor(t, 30*time.Second, fmt.Sprintf("%s.%d running with a pid other than %d", app, index, not), func() bool {
		for _, in := range listJSON(t, s)[app].Instances {
			if in.Instance == index && in.State == clientsdk.StateRunning && in.PID > 0 && in.PID != not {
				pid = in.PID
				return true
			}
		}
		return false
	})
	return pid
}

// TestDashboardInChromium drives the dashboard in a real headless
// Chromium: it lists a pushed daemon and its instance, tails a log line the
// app prints after the page loaded, restarts the app with its button (the
// pid changes), scales it down with its scale box after `dartup scale` took
// it to 3 (the instance that stays keeps its pid), and no request of the
// page leaves the loopback address. A screenshot is the test's artifact.
func TestDashboardInChromium(t *testing.T) {
	chrome := chromium(t)
	s := startServe(t, testutil.TempDir(t))
	mark := fmt.Sprintf("printed-after-load-%d", time.Now().UnixNano())
	// A daemon that prints $MARK on SIGUSR1: a line that cannot exist
	// before the test sends the signal.
	// Its first line carries markup, a terminal escape and invalid UTF-8:
	// the page must show them as text.
	script := `trap 'echo "$MARK"' USR1; printf 'uiapp up, pid %s <img id=pwned src=x onerror=alert(1)> \033[31m \377\n' $$; while :; do sleep 1 & wait $!; done`
	s.dartup("push", "--name", "uiapp", "--env", "MARK="+mark, "--runtime", "command", "--", "/bin/sh", "-c", script)
	pid := runningPID(t, s, "uiapp", 0, 0)

	ctx := browser(t, chrome)
	var reqs requestLog
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			reqs.add(e.Request.URL)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.httpURL+"/ui/")); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, 20*time.Second, "the app, alive", `document.querySelector('tr[data-app="uiapp"] .state-alive') !== null`)
	until(t, ctx, 20*time.Second, "the instance's pid", fmt.Sprintf(`document.querySelector('tr[data-instance="uiapp.0"] td.pid')?.textContent === %q`, strconv.Itoa(pid)))
	until(t, ctx, 20*time.Second, "the live connection", `document.querySelector('#conn').dataset.state === 'live'`)

	// The log pane: choose the app, see its history, then a line printed now.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-app="uiapp"][data-action="logs"]`))); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, 20*time.Second, "the log tail following", `document.querySelector('#log-state').dataset.state === 'live' && document.querySelector('#logs').textContent.includes('uiapp up, pid')`)
	until(t, ctx, 5*time.Second, "the markup as text, not as an element", `document.getElementById('pwned') === null && document.querySelector('#logs').textContent.includes('<img id=pwned src=x onerror=alert(1)>')`)
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, 20*time.Second, "the line printed after the page loaded", `document.querySelector('#logs').textContent.includes(`+jsString(mark)+`)`)

	// Restart: a new worker, a new pid, in `dartup list` and on the page.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-app="uiapp"][data-action="restart"]`))); err != nil {
		t.Fatal(err)
	}
	newPID := runningPID(t, s, "uiapp", 0, pid)
	until(t, ctx, 20*time.Second, "the new pid", fmt.Sprintf(`document.querySelector('tr[data-instance="uiapp.0"] td.pid')?.textContent === %q`, strconv.Itoa(newPID)))
	until(t, ctx, 20*time.Second, "the restart event", `[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('restart'))`)

	scaleTo3ThenBackWithTheBox(t, s, ctx, newPID)

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (kept with go test -artifacts)", file)

	all, off := reqs.offLoopback()
	if len(all) < 4 || len(off) > 0 {
		t.Errorf("the page made %d requests, %d of them off loopback: %q (all: %q)", len(all), len(off), off, all)
	}
}

// scaleTo3ThenBackWithTheBox scales uiapp to 3 with `dartup scale`, then
// back to 1 with the dashboard's scale box; instance 0 (pid) runs through
// both.
func scaleTo3ThenBackWithTheBox(t *testing.T, s *server, ctx context.Context, pid int) {
	t.Helper()
	s.dartup("scale", "uiapp", "3")
	a := listJSON(t, s)["uiapp"]
	if a.Running != 3 || a.Desired != 3 {
		t.Fatalf("after `dartup scale uiapp 3`: %d of %d running", a.Running, a.Desired)
	}
	if p := runningPID(t, s, "uiapp", 0, 0); p != pid {
		t.Errorf("scaling up replaced instance 0: pid %d, was %d", p, pid)
	}
	extra := []int{runningPID(t, s, "uiapp", 1, 0), runningPID(t, s, "uiapp", 2, 0)}
	until(t, ctx, 20*time.Second, "three instances", `document.querySelectorAll('tr[data-instance^="uiapp."]').length === 3`)
	box := chromedp.CSS(`input.scale[data-app="uiapp"]`)
	if err := chromedp.Do(ctx, chromedp.SetValue(box, "1"), chromedp.Click(chromedp.CSS(`button[data-app="uiapp"][data-action="scale"]`))); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "uiapp back to one instance, the others' processes gone", func() bool {
		a := listJSON(t, s)["uiapp"]
		gone := func(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }
		return a.Desired == 1 && a.Running == 1 && gone(extra[0]) && gone(extra[1])
	})
	if p := runningPID(t, s, "uiapp", 0, 0); p != pid {
		t.Errorf("scaling down replaced instance 0: pid %d, was %d", p, pid)
	}
	until(t, ctx, 20*time.Second, "one instance", `document.querySelectorAll('tr[data-instance^="uiapp."]').length === 1`)
}

// TestDashboardReconnectsAfterBusy: a page that finds every stream slot
// taken (503, which makes a browser's EventSource give up for good) says
// so and comes back live by itself once slots are free.
func TestDashboardReconnectsAfterBusy(t *testing.T) {
	chrome := chromium(t)
	s := startServe(t, testutil.TempDir(t))
	var held []io.Closer
	release := func() {
		for _, c := range held {
			c.Close()
		}
		held = nil
	}
	t.Cleanup(release)
	for {
		res, err := http.Get(s.httpURL + "/ui/api/stream")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == http.StatusServiceUnavailable {
			res.Body.Close()
			break
		}
		if res.StatusCode != http.StatusOK || len(held) > 64 {
			t.Fatalf("stream %d: %s", len(held), res.Status)
		}
		held = append(held, res.Body)
	}
	ctx := browser(t, chrome)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.httpURL+"/ui/")); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, 20*time.Second, "the refused stream", `document.querySelector('#conn').dataset.state === 'down'`)
	release()
	until(t, ctx, 30*time.Second, "the live connection once streams are free", `document.querySelector('#conn').dataset.state === 'live'`)
}
