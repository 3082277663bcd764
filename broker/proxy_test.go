package broker

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// routeTo makes addrs the ready instances of app in bk.
func routeTo(bk *backends, app string, addrs ...string) {
	for i, a := range addrs {
		b, _ := json.Marshal(clientsdk.InstanceStatus{App: app, Instance: i, State: clientsdk.StateRunning, Ready: true, Address: a, PID: 100 + i})
		bk.apply(clientsdk.InstanceKey(app, i), true, b)
	}
}

// testProxy serves the daemon proxy for app "w" on a loopback server.
func testProxy(t *testing.T) (*backends, *httptest.Server) {
	bk := newBackends(slog.New(slog.DiscardHandler), "test")
	g := &gateway{logger: slog.New(slog.DiscardHandler)}
	p := newDaemonProxy(g, bk)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.serve(w, r, route{HTTPRoute: clientsdk.HTTPRoute{Prefix: "/"}, app: "w"})
	}))
	t.Cleanup(front.Close)
	return bk, front
}

// instance is an HTTP server that answers its name (after /slow waits).
func instance(t *testing.T, name string, release <-chan struct{}) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprintf(w, "%s %s %s %s", name, body, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Real-IP"))
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// refusing returns a loopback address nothing listens on.
func refusing(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func fetch(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProxyLeastOutstanding(t *testing.T) {
	bk, front := testProxy(t)
	release := make(chan struct{})
	a, b := instance(t, "a", release), instance(t, "b", release)
	routeTo(bk, "w", a, b)
	// Hold 3 slow requests: with least outstanding requests they spread
	// 2-1, never 3-0, and a fast one goes to the less busy instance.
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); fetch(t, "GET", front.URL+"/slow", "") }()
		testWaitFor(t, func() bool { return bk.count(a).Load()+bk.count(b).Load() > 0 })
		time.Sleep(20 * time.Millisecond)
	}
	testWaitFor(t, func() bool { return bk.count(a).Load()+bk.count(b).Load() == 3 })
	na, nb := bk.count(a).Load(), bk.count(b).Load()
	if na+nb != 3 || na == 3 || nb == 3 {
		t.Fatalf("in flight: a %d, b %d", na, nb)
	}
	want := "a"
	if na > nb {
		want = "b"
	}
	if _, body := fetch(t, "GET", front.URL+"/", ""); !strings.HasPrefix(body, want) {
		t.Fatalf("a request went to %q, want the less busy %s", body, want)
	}
	close(release)
	wg.Wait()
	if bk.count(a).Load() != 0 || bk.count(b).Load() != 0 {
		t.Fatalf("requests still counted in flight: %d %d", bk.count(a).Load(), bk.count(b).Load())
	}
}

func TestProxyRetriesRefusedConnections(t *testing.T) {
	bk, front := testProxy(t)
	good := instance(t, "good", nil)
	routeTo(bk, "w", refusing(t), refusing(t), good)
	for i := range 10 {
		code, body := fetch(t, "POST", front.URL+"/", fmt.Sprintf("body-%d", i))
		if code != 200 || body != fmt.Sprintf("good body-%d 127.0.0.1 127.0.0.1", i) {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	bk2, front2 := testProxy(t)
	routeTo(bk2, "w", refusing(t))
	if code, body := fetch(t, "GET", front2.URL+"/", ""); code != 502 || !strings.Contains(body, "refused") {
		t.Fatalf("every instance refusing: %d %q, want 502", code, body)
	}
	_, front3 := testProxy(t)
	if code, body := fetch(t, "GET", front3.URL+"/", ""); code != 503 || !strings.Contains(body, "no instance of w is ready") {
		t.Fatalf("no instance: %d %q, want 503", code, body)
	}
}

// A connection that breaks after the request was sent is a 502 at once:
// the request is not sent again.
func TestProxyDoesNotRetryWhatWasSent(t *testing.T) {
	bk, front := testProxy(t)
	var calls sync.Map
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Store(r.URL.Path, true)
		c, _, _ := w.(http.Hijacker).Hijack()
		_ = c.Close()
	}))
	t.Cleanup(broken.Close)
	routeTo(bk, "w", strings.TrimPrefix(broken.URL, "http://"))
	start := time.Now()
	code, _ := fetch(t, "POST", front.URL+"/once", "x")
	if code != 502 || time.Since(start) > 5*time.Second {
		t.Fatalf("broken connection: %d after %s, want 502 at once", code, time.Since(start))
	}
}

func TestProxyDrain(t *testing.T) {
	bk, front := testProxy(t)
	release := make(chan struct{})
	a, b := instance(t, "a", release), instance(t, "b", nil)
	routeTo(bk, "w", a)
	done := make(chan string)
	go func() { _, body := fetch(t, "GET", front.URL+"/slow", ""); done <- body }()
	testWaitFor(t, func() bool { return bk.count(a).Load() == 1 })
	routeTo(bk, "w", a, b)
	var mu sync.Mutex
	var replies []clientsdk.GatewayDrainReply
	req, _ := json.Marshal(clientsdk.GatewayDrainRequest{Address: a, PID: 100, Wait: clientsdk.Duration(10 * time.Second)})
	bk.drain(&nats.Msg{Data: req}, func(_ *nats.Msg, data []byte) error {
		var r clientsdk.GatewayDrainReply
		_ = json.Unmarshal(data, &r)
		mu.Lock()
		replies = append(replies, r)
		mu.Unlock()
		return nil
	})
	mu.Lock()
	first := replies[0]
	mu.Unlock()
	if first.Done || first.InFlight != 1 {
		t.Fatalf("first drain reply %+v, want 1 in flight", first)
	}
	for range 5 { // the drained address takes nothing new
		if _, body := fetch(t, "GET", front.URL+"/", ""); !strings.HasPrefix(body, "b") {
			t.Fatalf("a request went to the draining instance: %q", body)
		}
	}
	close(release)
	if body := <-done; !strings.HasPrefix(body, "a") {
		t.Fatalf("the request in flight got %q", body)
	}
	testWaitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(replies) == 2 && replies[1].Done })
	// A new worker at the drained address (a fixed port) takes requests as
	// soon as its status says it is ready.
	routeTo(bk, "w", b, a) // a is instance 1 now: another pid
	testWaitFor(t, func() bool {
		_, body := fetch(t, "GET", front.URL+"/", "")
		return strings.HasPrefix(body, "a")
	})
}

func testWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 10s")
}

// --http-strip-prefix removes the prefix from the path as it came: escapes
// stay escapes.
func TestProxyStripPrefixKeepsEscapes(t *testing.T) {
	bk := newBackends(slog.New(slog.DiscardHandler), "test")
	p := newDaemonProxy(&gateway{logger: slog.New(slog.DiscardHandler)}, bk)
	rt := route{HTTPRoute: clientsdk.HTTPRoute{Prefix: "/shop"}, app: "w", strip: true}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serve(w, r, rt) }))
	t.Cleanup(front.Close)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.URL.EscapedPath()) }))
	t.Cleanup(app.Close)
	routeTo(bk, "w", strings.TrimPrefix(app.URL, "http://"))
	for in, want := range map[string]string{"/shop": "/", "/shop/cart": "/cart", "/shop/a%2Fb": "/a%2Fb", "/shop/x?y=1": "/x"} {
		if _, got := fetch(t, "GET", front.URL+in, ""); got != want {
			t.Errorf("%s reached the app as %q, want %q", in, got, want)
		}
	}
}
