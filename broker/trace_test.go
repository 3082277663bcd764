package broker_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

const tracePkg = "./internal/testutil/workers/lambdatrace"

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
	callerTP    = "00-" + callerTrace + "-" + callerSpan + "-01"
)

// traceEcho is what the lambdatrace bootstrap answers.
type traceEcho struct {
	EnvTraceID     string `json:"env_trace_id"`
	ContextTraceID string `json:"context_trace_id"`
	Traceparent    string `json:"traceparent"`
	Tracestate     string `json:"tracestate"`
	AmznTraceID    string `json:"amzn_trace_id"`
	Headers        int    `json:"traceparent_headers"`
}

// hop parses the traceparent the function's event carried, which must be
// the only one, and checks that the Runtime API's trace id (the
// environment and the context of aws-lambda-go) and the event's
// X-Amzn-Trace-Id are the same hop in X-Ray form.
func (e traceEcho) hop(t *testing.T) clientsdk.TraceContext {
	t.Helper()
	tc, ok := clientsdk.ParseTraceparent(e.Traceparent)
	if !ok || e.Headers != 1 {
		t.Fatalf("the event's traceparent %q (%d headers) is not one valid traceparent", e.Traceparent, e.Headers)
	}
	if x := tc.XRay(); e.EnvTraceID != x || e.ContextTraceID != x || e.AmznTraceID != x {
		t.Fatalf("traceparent %s: _X_AMZN_TRACE_ID %q, context %q, X-Amzn-Trace-Id %q; want all %q",
			e.Traceparent, e.EnvTraceID, e.ContextTraceID, e.AmznTraceID, x)
	}
	return tc
}

// getTraced sends GET path with headers hdr (added in order: a key may
// repeat)
// and decodes the function's echo.
func (r *lambdaRig) getTraced(path string, hdr [][2]string) traceEcho {
	r.t.Helper()
	req, _ := http.NewRequest("GET", r.b.HTTPURL()+path, nil)
	for _, kv := range hdr {
		req.Header.Add(kv[0], kv[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var e traceEcho
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 200 {
		r.t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return e
}

// (a) A caller's traceparent reaches an aws-lambda-go function through the
// gateway: the same trace, sampled as the caller said, with the gateway's
// span as parent (not the caller's) in the event's traceparent, its
// X-Amzn-Trace-Id and the Runtime API's trace id; tracestate as given.
// (b) Without a valid traceparent, a new trace (and no tracestate).
func TestGatewayTraceToLambda(t *testing.T) {
	r := newLambdaRig(t)
	r.host("tr", tracePkg, nil)
	e := r.getTraced("/tr", [][2]string{{"traceparent", callerTP}, {"tracestate", "congo=t61rcWkgMzE"}, {"tracestate", "rojo=00f067aa0ba902b7"},
		{"X-Amzn-Trace-Id", "Root=1-00000001-000000000000000000000001;Parent=0000000000000001;Sampled=1"}})
	hop := e.hop(t)
	if hop.TraceIDString() != callerTrace || hop.ParentIDString() == callerSpan || !hop.Sampled() || e.Tracestate != "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" {
		t.Fatalf("the function got %s with tracestate %q; want trace %s, a new parent, sampled, the caller's tracestate", e.Traceparent, e.Tracestate, callerTrace)
	}
	other := r.getTraced("/tr", [][2]string{{"traceparent", callerTP}})
	if h := other.hop(t); h.TraceIDString() != callerTrace || h.ParentID == hop.ParentID || other.Tracestate != "" {
		t.Fatalf("a second request: %s tracestate %q: want the same trace, another gateway span", other.Traceparent, other.Tracestate)
	}

	seen := map[string]bool{}
	for _, tc := range []struct {
		name string
		hdr  [][2]string
	}{
		{"none", nil},
		{"upper case", [][2]string{{"traceparent", strings.ToUpper(callerTP)}, {"tracestate", "congo=1"}}},
		{"version ff", [][2]string{{"traceparent", "ff" + callerTP[2:]}}},
		{"zero trace id", [][2]string{{"traceparent", "00-" + strings.Repeat("0", 32) + "-" + callerSpan + "-01"}}},
		{"two traceparents", [][2]string{{"traceparent", callerTP}, {"traceparent", callerTP}}},
		{"garbage", [][2]string{{"traceparent", "<script>alert(1)</script>"}, {"tracestate", "a=1"}}},
	} {
		e := r.getTraced("/tr", tc.hdr)
		h := e.hop(t)
		if h.TraceIDString() == callerTrace || h.Sampled() || seen[h.TraceIDString()] || e.Tracestate != "" {
			t.Errorf("%s: the function got %s tracestate %q; want a new unsampled trace without tracestate", tc.name, e.Traceparent, e.Tracestate)
		}
		seen[h.TraceIDString()] = true
	}
	// A valid traceparent with a tracestate over the bound: the trace goes
	// on, the tracestate is dropped.
	long := r.getTraced("/tr", [][2]string{{"traceparent", callerTP}, {"tracestate", "a=" + strings.Repeat("x", 200) + ",b=" + strings.Repeat("y", 200) + ",c=" + strings.Repeat("z", 200)}})
	if h := long.hop(t); h.TraceIDString() != callerTrace || long.Tracestate != "" {
		t.Fatalf("an oversized tracestate: %s %q", long.Traceparent, long.Tracestate)
	}
}

// An async invocation over HTTP stores the gateway's traceparent with the
// event, and the eventual invocation carries it.
func TestGatewayTraceAsync(t *testing.T) {
	r := newLambdaRig(t)
	r.host("tra", tracePkg, func(l *clientsdk.LambdaSpec) { l.Async = &clientsdk.AsyncSpec{OnSuccess: "test.tra.done"} })
	done := make(chan clientsdk.AsyncOutcome, 1)
	sub, err := r.nc.Subscribe("test.tra.done", func(m *nats.Msg) {
		var o clientsdk.AsyncOutcome
		if json.Unmarshal(m.Data, &o) == nil {
			done <- o
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	resp, _ := r.do("POST", "/tra", []byte(`{}`), map[string]string{broker.HeaderInvocationType: "Event", "traceparent": callerTP})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("async POST: %d", resp.StatusCode)
	}
	select {
	case o := <-done:
		var e traceEcho
		if err := json.Unmarshal(o.Result, &e); err != nil {
			t.Fatalf("%v: %s", err, o.Result)
		}
		if h := e.hop(t); h.TraceIDString() != callerTrace || h.ParentIDString() == callerSpan {
			t.Fatalf("the async invocation got %s; want trace %s with the gateway's span as parent", e.Traceparent, callerTrace)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the async event did not run")
	}
}

// (c) A daemon behind a route gets the gateway's traceparent and the
// caller's tracestate, even when the client names them hop-by-hop.
func TestGatewayTraceToDaemon(t *testing.T) {
	r := newLambdaRig(t)
	var mu sync.Mutex
	var got []http.Header
	routeDaemonTo(t, r, "web", "/", func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		got = append(got, req.Header.Clone())
		mu.Unlock()
	})
	testutil.WaitFor(t, 10*time.Second, "the daemon's route", func() bool {
		resp, _ := r.do("GET", "/x", nil, nil)
		return resp.StatusCode == 200
	})
	for _, conn := range []string{"", "traceparent, tracestate"} {
		hdr := map[string]string{"traceparent": callerTP, "tracestate": "congo=1"}
		if conn != "" {
			hdr["Connection"] = conn
		}
		mu.Lock()
		got = nil
		mu.Unlock()
		resp, _ := r.do("GET", "/x", nil, hdr)
		mu.Lock()
		if resp.StatusCode != 200 || len(got) != 1 {
			t.Fatalf("GET /x: %d, %d requests at the daemon", resp.StatusCode, len(got))
		}
		h := got[0]
		mu.Unlock()
		tc, ok := clientsdk.TraceFromValues(h.Values("traceparent"))
		if !ok || tc.TraceIDString() != callerTrace || tc.ParentIDString() == callerSpan || h.Get("tracestate") != "congo=1" {
			t.Fatalf("Connection %q: the daemon got traceparent %q tracestate %q", conn, h.Values("traceparent"), h.Get("tracestate"))
		}
	}
}

// (d) With a tracer provider, the gateway's server span (a child of the
// caller's traceparent, with method, route owner and status) and the
// lambda host's invocation span (a child of the gateway's span) reach an
// OTLP collector; the function's parent is the invocation span. A request
// no route takes is a span named by its method alone, never its path.
func TestGatewayOTLPSpans(t *testing.T) {
	tp, col := testutil.OTLPProvider(t)
	b := testutil.StartBroker(t, func(c *broker.Config) { c.TracerProvider = tp })
	r := newLambdaRigWith(t, b, []lambdas.Option{lambdas.WithTracerProvider(tp)})
	r.host("tr", tracePkg, nil)
	e := r.getTraced("/tr/a/b", [][2]string{{"traceparent", callerTP}})
	gwHop, ok := clientsdk.ParseTraceparent(e.Traceparent)
	if !ok || gwHop.TraceIDString() != callerTrace {
		t.Fatalf("the event's traceparent %q", e.Traceparent)
	}
	gw := col.WaitSpan(t, tp, "the gateway span", func(s testutil.Span) bool { return s.SpanID() == gwHop.ParentIDString() })
	if gw.Name != "GET /tr" || gw.TraceID() != callerTrace || gw.ParentID() != callerSpan || gw.Kind.String() != "SPAN_KIND_SERVER" ||
		gw.Attr("http.request.method") != "GET" || gw.Attr("dartup.route.owner") != "tr" || gw.Attr("http.response.status_code") != "200" ||
		gw.Scope != "github.com/dartup/dartup/broker" {
		t.Fatalf("gateway span %q trace %s parent %s kind %s scope %s attrs %v", gw.Name, gw.TraceID(), gw.ParentID(), gw.Kind, gw.Scope, gw.Attributes)
	}
	inv := col.WaitSpan(t, tp, "the invocation span", func(s testutil.Span) bool { return s.ParentID() == gw.SpanID() })
	if inv.Name != "tr" || inv.TraceID() != callerTrace || inv.Attr("faas.coldstart") != "true" || inv.Attr("dartup.result") != "ok" {
		t.Fatalf("invocation span %q trace %s attrs %v", inv.Name, inv.TraceID(), inv.Attributes)
	}
	if want := "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=" + inv.SpanID() + ";Sampled=1"; e.EnvTraceID != want {
		t.Fatalf("the function's trace id %q, want %q (the invocation span as parent)", e.EnvTraceID, want)
	}

	resp, _ := r.do("GET", "/no-such-lambda/123?id=456", nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /no-such-lambda: %d", resp.StatusCode)
	}
	nf := col.WaitSpan(t, tp, "the 404's span", func(s testutil.Span) bool { return s.Attr("http.response.status_code") == "404" })
	if nf.Name != "GET" || nf.Attr("dartup.route.owner") != "" || nf.ParentID() != "" {
		t.Fatalf("a request no route takes: span %q attrs %v parent %q", nf.Name, nf.Attributes, nf.ParentID())
	}
	// A trace the SDK starts has an X-Ray-valid id: the time first.
	if secs, err := strconv.ParseInt(nf.TraceID()[:8], 16, 64); err != nil || time.Since(time.Unix(secs, 0)).Abs() > time.Minute {
		t.Fatalf("a new trace id %s does not start with the time", nf.TraceID())
	}
	for _, s := range col.Spans() {
		if strings.Contains(s.Name, "123") || strings.Contains(s.Name, "no-such") {
			t.Errorf("a span is named after a raw path: %q", s.Name)
		}
	}
}

// The gateway logs the failures it answers (5xx but a function's 500)
// with the request's trace id: a lambda that no runner hosts is a 503,
// and the warning names the caller's trace.
func TestGatewayLogsTraceID(t *testing.T) {
	var logs testutil.SyncBuffer
	b := testutil.StartBroker(t, func(c *broker.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	r := newLambdaRigOn(t, b)
	r.put("orphan", clientsdk.KindLambda, nil) // stored, hosted nowhere
	resp, body := r.do("GET", "/orphan", nil, map[string]string{"traceparent": callerTP})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /orphan: %d %s", resp.StatusCode, body)
	}
	testutil.WaitFor(t, 5*time.Second, "the warning", func() bool {
		return strings.Contains(logs.String(), "no runner hosts the lambda")
	})
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "no runner hosts the lambda") && !strings.Contains(line, "trace_id="+callerTrace) {
			t.Fatalf("the warning has no trace id: %s", line)
		}
	}
	// A client hammering it gets its 503s, and the log one line per 10 s.
	for range 20 {
		if resp, _ := r.do("GET", "/orphan", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("GET /orphan again: %d", resp.StatusCode)
		}
	}
	if n := strings.Count(logs.String(), "no runner hosts the lambda"); n != 1 {
		t.Fatalf("21 failed requests of one kind logged %d lines, want 1 within 10 s", n)
	}
}
