package broker_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// uiRequest sends a request to the dashboard; header and body may be empty.
func uiRequest(t *testing.T, method, url, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

var tokenMeta = regexp.MustCompile(`<meta name="dartup-token" content="([0-9a-f]{64})">`)

// uiToken reads the token from the dashboard's page.
func uiToken(t *testing.T, base string, header map[string]string) string {
	t.Helper()
	code, h, page := uiRequest(t, "GET", base+"/ui/", "", header)
	if code != 200 || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") || h.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("GET /ui/: %d, headers %v\n%s", code, h, page)
	}
	m := tokenMeta.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no token in the page:\n%s", page)
	}
	return m[1]
}

// TestUIActionsNeedTokenAndSameOrigin: an action needs POST, the page's
// token and a same-origin request; with them it runs the control API verb.
func TestUIActionsNeedTokenAndSameOrigin(t *testing.T) {
	t.Parallel()
	b, c := startWithClient(t)
	pushCommand(t, c, "web", nil)
	base := b.HTTPURL()
	tok := uiToken(t, base, nil)
	scale := base + "/ui/api/apps/web/scale"
	good := map[string]string{"X-Dartup-Token": tok, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}
	// with is good with the headers given as name, value pairs ("": left out).
	with := func(kv ...string) map[string]string {
		h := map[string]string{}
		for a, b := range good {
			h[a] = b
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(h, kv[i])
			} else {
				h[kv[i]] = kv[i+1]
			}
		}
		return h
	}
	for _, tc := range []struct {
		name, method, url, body string
		header                  map[string]string
		code                    int
		says                    string
	}{
		{"no token", "POST", scale, `{"instances":2}`, with("X-Dartup-Token", ""), 403, "lacks the dashboard's token"},
		{"wrong token", "POST", scale, `{"instances":2}`, with("X-Dartup-Token", strings.Repeat("0", 64)), 403, "lacks the dashboard's token"},
		{"cross-site", "POST", scale, `{"instances":2}`, with("Sec-Fetch-Site", "cross-site"), 403, "cross-origin"},
		{"cross-origin without fetch metadata", "POST", scale, `{"instances":2}`, with("Sec-Fetch-Site", "", "Origin", "http://evil.example"), 403, "cross-origin"},
		{"GET", "GET", base + "/ui/api/apps/web/restart", "", good, 405, "POST only"},
		{"PUT", "PUT", scale, `{"instances":2}`, good, 405, "POST only"},
		{"unknown action", "POST", base + "/ui/api/apps/web/explode", "", good, 404, "restart, kill, start and scale"},
		{"unknown app", "POST", base + "/ui/api/apps/nope/restart", "", good, 404, `no app named \"nope\"`},
		{"bad name", "POST", base + "/ui/api/apps/-x/kill", "", good, 400, "InvalidName"},
		{"bad body", "POST", scale, `{"instances":"many"}`, good, 400, "not valid JSON"},
		{"huge body", "POST", scale, `{"instances":2,"pad":"` + strings.Repeat("x", 4096) + `"}`, good, 413, "over 1024 bytes"},
		{"out of range", "POST", scale, `{"instances":5000}`, good, 400, "allowed 1 to 1024"},
		{"rebinding host", "POST", scale, `{"instances":2}`, with("Host", "evil.example:2374"), 403, "loopback address"},
	} {
		code, h, body := uiRequest(t, tc.method, tc.url, tc.body, tc.header)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %s; want %d saying %q", tc.name, code, body, tc.code, tc.says)
		}
		if code == 405 && h.Get("Allow") != "POST" {
			t.Errorf("%s: Allow %q", tc.name, h.Get("Allow"))
		}
	}
	if n := describe(t, c, "web").Spec.Instances; n != 0 && n != 1 {
		t.Fatalf("a refused action changed the app: %d instances", n)
	}
	code, _, body := uiRequest(t, "POST", scale, `{"instances":3}`, good)
	if code != 200 || describe(t, c, "web").Spec.Instances != 3 {
		t.Fatalf("scale with the token: %d %s", code, body)
	}
	code, _, body = uiRequest(t, "POST", base+"/ui/api/apps/web/kill", "", good)
	if code != 200 || !describe(t, c, "web").Spec.Stopped {
		t.Fatalf("kill with the token: %d %s", code, body)
	}
	code, _, body = uiRequest(t, "POST", base+"/ui/api/apps/web/restart", "", good)
	if code != 409 || !strings.Contains(body, "is stopped") {
		t.Errorf("restart of a killed app: %d %s; want 409", code, body)
	}
	code, _, body = uiRequest(t, "POST", base+"/ui/api/apps/web/start", "", good)
	if code != 200 || describe(t, c, "web").Spec.Stopped {
		t.Fatalf("start with the token: %d %s", code, body)
	}
	// Another server, another token.
	other := testutil.StartBroker(t)
	if tok2 := uiToken(t, other.HTTPURL(), nil); tok2 == tok {
		t.Error("two servers gave the same token")
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ name, data string }

// sseStream reads the events of one open stream.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
}

// openSSE opens a stream; it returns nil and the status when it is refused.
func openSSE(t *testing.T, url string, header map[string]string) (*sseStream, int) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		_ = resp.Body.Close()
		return nil, resp.StatusCode
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 1024)}
	t.Cleanup(s.close)
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var e sseEvent
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "":
				if e.name != "" {
					s.events <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				e.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				e.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s, 200
}

func (s *sseStream) close() { _ = s.resp.Body.Close() }

// until reads events until want returns true for one; it fails the test
// when the stream ends or timeout passes first.
func (s *sseStream) until(t *testing.T, timeout time.Duration, what string, want func(sseEvent) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				t.Fatalf("the stream ended before %s", what)
			}
			if want(e) {
				return
			}
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// waitEnd reads events until the stream ends; it fails the test when it
// has not ended after timeout.
func (s *sseStream) waitEnd(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("the stream is still open after %s", timeout)
		}
	}
}

// TestUIStreamsAreBounded: the snapshot stream shows the apps and their
// events; a server keeps at most UIMaxStreams streams open, refuses one
// more with 503 and Retry-After, and takes one again once a page goes.
func TestUIStreamsAreBounded(t *testing.T) {
	t.Parallel()
	b, c := startWithClient(t)
	pushCommand(t, c, "web", nil)
	base := b.HTTPURL()
	first, code := openSSE(t, base+"/ui/api/stream", nil)
	if first == nil {
		t.Fatalf("stream: %d", code)
	}
	first.until(t, 10*time.Second, "the pushed event of web", func(e sseEvent) bool {
		return e.name == "event" && strings.Contains(e.data, `"app":"web","kind":"pushed"`)
	})
	first.until(t, 10*time.Second, "a snapshot listing web", func(e sseEvent) bool {
		var s struct {
			Apps []struct{ Name, Kind string } `json:"apps"`
		}
		return e.name == "snapshot" && json.Unmarshal([]byte(e.data), &s) == nil && len(s.Apps) == 1 && s.Apps[0].Name == "web" && s.Apps[0].Kind == "daemon"
	})
	for range broker.UIMaxStreams + 1 { // a HEAD holds no stream open
		if code, _, _ := uiRequest(t, "HEAD", base+"/ui/api/stream", "", nil); code != 200 {
			t.Fatalf("HEAD stream: %d", code)
		}
	}
	for _, site := range []string{"cross-site", "same-site"} {
		if code, _, body := uiRequest(t, "GET", base+"/ui/api/stream", "", map[string]string{"Sec-Fetch-Site": site}); code != 403 {
			t.Errorf("a %s page opening the stream: %d %s; want 403", site, code, body)
		}
	}
	open := []*sseStream{first}
	for i := 1; i < broker.UIMaxStreams; i++ {
		url := base + "/ui/api/stream"
		if i%2 == 0 {
			url = base + "/ui/api/logs?app=web"
		}
		s, code := openSSE(t, url, nil)
		if s == nil {
			t.Fatalf("stream %d of %d refused: %d", i+1, broker.UIMaxStreams, code)
		}
		open = append(open, s)
	}
	for _, url := range []string{base + "/ui/api/stream", base + "/ui/api/logs?app=web"} {
		code, h, body := uiRequest(t, "GET", url, "", nil)
		if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(body, "most open streams") {
			t.Errorf("stream %d: %d %v %s; want 503 with Retry-After", broker.UIMaxStreams+1, code, h, body)
		}
	}
	open[3].close()
	testutil.WaitFor(t, 10*time.Second, "a stream slot freed by a page that went", func() bool {
		s, _ := openSSE(t, base+"/ui/api/stream", nil)
		return s != nil
	})
	for _, tc := range []struct{ query, says string }{
		{"", "app name is empty"},
		{"app=a.b", "InvalidName"},
		{"app=web&instance=-1", "instance must be a number"},
		{"app=web&instance=x", "instance must be a number"},
	} {
		if code, _, body := uiRequest(t, "GET", base+"/ui/api/logs?"+tc.query, "", nil); code != 400 || !strings.Contains(body, tc.says) {
			t.Errorf("logs?%s: %d %s; want 400 saying %q", tc.query, code, body, tc.says)
		}
	}
}

// TestUILogTailIsBounded: a log line longer than the dashboard forwards is
// cut, and a flood is forwarded at the dashboard's rate with the rest
// counted in "dropped" events: every line is either sent or counted.
func TestUILogTailIsBounded(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	long := "start-" + strings.Repeat("x", 10000)
	if _, err := js.Publish(ctx, clientsdk.LogSubject("noisy", 0, "out"), []byte(long)); err != nil {
		t.Fatal(err)
	}
	s, code := openSSE(t, b.HTTPURL()+"/ui/api/logs?app=noisy", nil)
	if s == nil {
		t.Fatalf("logs: %d", code)
	}
	s.until(t, 10*time.Second, "the long line, cut", func(e sseEvent) bool {
		var l struct{ Line string }
		if e.name != "line" || json.Unmarshal([]byte(e.data), &l) != nil {
			return false
		}
		if !strings.HasPrefix(l.Line, "start-xxx") || len(l.Line) > 4096+32 || !strings.HasSuffix(l.Line, "bytes cut]") {
			t.Fatalf("the 10006-byte line came as %d bytes ending %q", len(l.Line), l.Line[max(0, len(l.Line)-40):])
		}
		return true
	})
	const flood = 3000
	for i := range flood {
		if _, err := js.PublishAsync(clientsdk.LogSubject("noisy", i%3, "err"), []byte("flood line")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("the flood was not stored")
	}
	sent, dropped := 0, 0
	s.until(t, 30*time.Second, "every flood line sent or counted", func(e sseEvent) bool {
		switch e.name {
		case "line":
			sent++
		case "dropped":
			var d struct{ Count int }
			if err := json.Unmarshal([]byte(e.data), &d); err != nil {
				t.Fatal(err)
			}
			dropped += d.Count
		}
		return sent+dropped >= flood
	})
	t.Logf("%d flood lines sent, %d counted as dropped", sent, dropped)
	if sent+dropped != flood || dropped == 0 || sent >= flood {
		t.Errorf("%d sent + %d dropped; want %d in all, some of them dropped", sent, dropped, flood)
	}
}

// TestUIRequiresPassword: under --require-password the page, its streams
// and its actions need a user; a logged-in user may use any host name.
func TestUIRequiresPassword(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t, func(c *broker.Config) { c.RequirePassword = true })
	addUser(t, b, "alice", alicePW)
	base := b.HTTPURL()
	for _, path := range []string{"/ui/", "/ui/static/app.js", "/ui/api/stream", "/ui/api/logs?app=web"} {
		code, h, _ := uiRequest(t, "GET", base+path, "", nil)
		if code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("GET %s without credentials: %d; want 401 with a Basic challenge", path, code)
		}
	}
	if code, _, _ := uiRequest(t, "POST", base+"/ui/api/apps/web/kill", "", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != 401 {
		t.Errorf("POST an action without credentials: %d; want 401", code)
	}
	auth := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+alicePW)), "Host": "dartup.example:443"}
	tok := uiToken(t, base, auth)
	auth["X-Dartup-Token"], auth["Sec-Fetch-Site"] = tok, "same-origin"
	code, _, body := uiRequest(t, "POST", base+"/ui/api/apps/web/kill", "", auth)
	if code != 404 || !strings.Contains(body, `no app named \"web\"`) {
		t.Errorf("an action with credentials and token: %d %s; want it to reach the API (404: no app)", code, body)
	}
	if code, _, _ := uiRequest(t, "GET", base+"/ui/static/app.js", "", auth); code != 200 {
		t.Errorf("app.js with credentials: %d", code)
	}
}

// TestUIShutdownEndsStreams: a server shuts down at once with dashboard
// streams open (within the gateway's bound, without an error), and the
// streams end.
func TestUIShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	page, _ := openSSE(t, b.HTTPURL()+"/ui/api/stream", nil)
	tail, _ := openSSE(t, b.HTTPURL()+"/ui/api/logs?app=web", nil)
	if page == nil || tail == nil {
		t.Fatal("streams refused")
	}
	page.until(t, 10*time.Second, "a snapshot", func(e sseEvent) bool { return e.name == "snapshot" })
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown with streams open: %v", err)
	}
	for _, s := range []*sseStream{page, tail} {
		s.waitEnd(t, 10*time.Second)
	}
}
