package broker

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

func TestExitLabel(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"0", "0"}, {"1", "1"}, {"255", "255"}, {"256", "other"}, {"-1", "other"}, {"01", "other"}, {"+1", "other"},
		{"SIGKILL", "SIGKILL"}, {"SIGTERM", "SIGTERM"}, {"SIGWHATEVER", "other"}, {"sigkill", "other"},
		{"signal 34", "signal 34"}, {"signal 0", "other"}, {"signal 128", "other"}, {"signal 034", "other"}, {"signal x", "other"},
		{"unknown", "unknown"}, {"other", "other"}, {"", "other"}, {strings.Repeat("9", 1000), "other"}, {`0"} 1`, "other"},
	} {
		if got := exitLabel(c.in); got != c.want {
			t.Errorf("exitLabel(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := exitCounts(map[string]uint64{"1": 2, "bogus": 3, "also bogus": 4, "other": 1})
	if len(got) != 2 || got["1"] != 2 || got["other"] != 8 {
		t.Fatalf("exitCounts folds what is not a code into other: %v", got)
	}
}

func TestMethodAndCodeLabels(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "DELETE": "DELETE", "OPTIONS": "OPTIONS", "get": "OTHER", "PROPFIND": "OTHER", "": "OTHER"} {
		if got := methodLabel(in); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int]string{200: "200", 404: "404", 418: "418", 299: "2xx", 799: "7xx", 999: "9xx", 99: "other", 1000: "other", -5: "other"} {
		if got := codeLabel(in); got != want {
			t.Errorf("codeLabel(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestBuiltinRoute(t *testing.T) {
	for in, want := range map[string]string{"/healthz": "healthz", "/metrics": "metrics", "/ui": "ui", "/ui/": "ui", "/ui/app/x": "ui",
		"/uix": "unmatched", "/metrics/x": "unmatched", "/": "unmatched", "/random/123": "unmatched"} {
		if got := builtinRoute(in); got != want {
			t.Errorf("builtinRoute(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInvocationResults(t *testing.T) {
	for _, c := range []struct {
		in                   clientsdk.LambdaStats
		ok, failed, timeouts uint64
	}{
		{clientsdk.LambdaStats{Invocations: 10}, 10, 0, 0},
		{clientsdk.LambdaStats{Invocations: 10, Errors: 3, Timeouts: 1}, 7, 2, 1},
		{clientsdk.LambdaStats{Invocations: 10, Errors: 3, Timeouts: 3, Throttled: 50}, 7, 0, 3},
		// inconsistent figures (an older runner) never underflow
		{clientsdk.LambdaStats{Invocations: 2, Errors: 5, Timeouts: 9}, 0, 0, 2},
	} {
		ok, failed, timeouts := invocationResults(c.in)
		if ok != c.ok || failed != c.failed || timeouts != c.timeouts {
			t.Errorf("invocationResults(%+v) = %d, %d, %d; want %d, %d, %d", c.in, ok, failed, timeouts, c.ok, c.failed, c.timeouts)
		}
	}
}

func TestStreamTotals(t *testing.T) {
	acc := func(streams ...string) *server.AccountDetail {
		a := &server.AccountDetail{}
		for _, s := range streams {
			a.Streams = append(a.Streams, server.StreamDetail{Name: s, State: server.StreamState{Msgs: 2, Bytes: 10, Consumers: 1}})
		}
		return a
	}
	got := streamTotals([]*server.AccountDetail{acc("A", "B"), acc("A", "C", "D")}, 3)
	if len(got) != 3 || got["A"].Msgs != 4 || got["A"].Bytes != 20 || got["A"].Consumers != 2 || got["B"].Msgs != 2 {
		t.Fatalf("streams summed by name, at most 3: %+v", got)
	}
	if _, ok := got["D"]; ok {
		t.Fatalf("a stream beyond the limit got a series: %+v", got)
	}
}

func TestHeartbeatAge(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		timeout time.Duration
		ago     time.Duration
		alive   bool
	}{
		{0, 3 * time.Second, true}, {0, 4500 * time.Millisecond, false}, {10 * time.Second, 10 * time.Second, true},
		{10 * time.Second, 12 * time.Second, false}, {0, -time.Second, true},
	} {
		n := nodeSeen{node: clientsdk.Node{ID: "n", Timeout: clientsdk.Duration(c.timeout)}, at: now.Add(-c.ago)}
		age, alive := heartbeatAge(n, now)
		if alive != c.alive || age < 0 || (c.ago > 0 && age != c.ago) {
			t.Errorf("timeout %s, heartbeat %s ago: age %s alive %v, want alive %v", c.timeout, c.ago, age, alive, c.alive)
		}
	}
}

// The request metrics take the route the table matched (its declared
// pattern), never the path; routes no app declares any more lose their
// series at the next scrape.
func TestRequestMetricsRoutesAndPrune(t *testing.T) {
	apps := map[string]clientsdk.AppSpec{
		"web":   daemonWith("web", "/shop"),
		"users": {Name: "users", Kind: clientsdk.KindLambda, Lambda: &clientsdk.LambdaSpec{Routes: []clientsdk.FunctionRoute{{Method: "GET", Path: "/users/{id}"}}}},
	}
	h := newHTTPMetrics()
	serve := func(table *routeTable, method, path string) {
		handler := h.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m, ok := table.match(r.Host, r.Method, r.URL.EscapedPath())
			noteRoute(r, m, ok)
			w.WriteHeader(http.StatusTeapot)
		}))
		handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
	}
	table := buildRoutes(apps)
	serve(table, "GET", "/users/42")
	serve(table, "GET", "/users/43")
	serve(table, "GET", "/shop/cart?id=9")
	serve(table, "BREW", "/nowhere/7f3a")
	want := map[string]float64{
		`users /users/{id} GET 418`: 2, `web /shop GET 418`: 1, ` unmatched OTHER 418`: 1,
	}
	check := func(want map[string]float64) {
		t.Helper()
		got := map[string]float64{}
		for _, m := range gatherCounters(t, h.requests) {
			got[m.labels] = m.value
		}
		if len(got) != len(want) {
			t.Fatalf("series %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("series %v, want %v", got, want)
			}
		}
	}
	check(want)
	delete(apps, "users")
	h.prune(buildRoutes(apps))
	delete(want, `users /users/{id} GET 418`)
	check(want)
	if n := len(gatherCounters(t, h.duration)); n != 2 {
		t.Fatalf("duration series after the prune: %d, want 2", n)
	}
}

type counterSample struct {
	labels string // app route method code
	value  float64
}

func gatherCounters(t *testing.T, c prometheus.Collector) []counterSample {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []counterSample
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			v := map[string]string{}
			for _, l := range m.GetLabel() {
				v[l.GetName()] = l.GetValue()
			}
			out = append(out, counterSample{labels: v["app"] + " " + v["route"] + " " + v["method"] + " " + v["code"], value: m.GetCounter().GetValue()})
		}
	}
	return out
}

// The status label is what the handler answered: its code, 200 when it
// wrote nothing, 101 for an upgrade, "aborted" when it panicked, and a
// class for a code Go has no name for.
func TestRequestMetricsStatus(t *testing.T) {
	h := newHTTPMetrics()
	mux := http.NewServeMux()
	mux.HandleFunc("/created", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) })
	mux.HandleFunc("/nothing", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/odd", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(799) })
	mux.HandleFunc("/early", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = w.Write([]byte("x"))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, _ *http.Request) { w.(http.Flusher).Flush() })
	mux.HandleFunc("/abort", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("partial"))
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, _ *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n")
		_ = brw.Flush()
		_ = c.Close()
	})
	srv := httptest.NewServer(h.instrument(mux))
	defer srv.Close()
	for _, p := range []string{"/created", "/nothing", "/odd", "/early", "/stream", "/abort", "/upgrade"} {
		resp, err := http.Get(srv.URL + p)
		if err == nil {
			_ = resp.Body.Close()
		}
	}
	want := map[string]bool{"201": true, "200": true, "7xx": true, "aborted": true, "101": true}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := map[string]float64{}
		for _, s := range gatherCounters(t, h.requests) {
			got[s.labels[strings.LastIndexByte(s.labels, ' ')+1:]] += s.value
		}
		if len(got) == len(want) && got["200"] == 3 && got["201"] == 1 && got["7xx"] == 1 && got["aborted"] == 1 && got["101"] == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("codes %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLostInstanceIsNotReady: an instance whose node stopped sending
// heartbeats is lost, and not ready either (dartup_instance_ready 0), or
// the dashboard's "running but not ready" goes below zero and a sum of
// ready instances counts those of a dead machine; while its node lives it
// keeps its own readiness.
func TestLostInstanceIsNotReady(t *testing.T) {
	spec := clientsdk.AppSpec{Name: "web", Kind: clientsdk.KindDaemon, Instances: 2}
	st := []clientsdk.InstanceStatus{
		{App: "web", Instance: 0, Node: "dead", State: clientsdk.StateRunning, Ready: true, PID: 10},
		{App: "web", Instance: 1, Node: "live", State: clientsdk.StateRunning, Ready: true, PID: 11},
	}
	live := map[string]clientsdk.Node{"live": {ID: "live"}}
	sum := summarizeDaemon(spec, st, live, time.Now())
	for _, tc := range []struct {
		index int
		state clientsdk.InstanceState
		ready bool
	}{{0, clientsdk.StateLost, false}, {1, clientsdk.StateRunning, true}} {
		got := sum.Instances[tc.index]
		if got.State != tc.state || got.Ready != tc.ready {
			t.Errorf("instance %d: state %s ready %v, want %s ready %v", tc.index, got.State, got.Ready, tc.state, tc.ready)
		}
	}
}
