package lambdas_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

const tracePkg = "./internal/testutil/workers/lambdatrace"

// traceEcho is what the lambdatrace bootstrap answers.
type traceEcho struct {
	EnvTraceID     string `json:"env_trace_id"`
	ContextTraceID string `json:"context_trace_id"`
}

var xrayRE = regexp.MustCompile(`^Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=([01])$`)

// invokeTraced invokes name with a traceparent NATS header under key (none
// when key is "") and returns what the bootstrap saw.
func (r *rig) invokeTraced(name, key, traceparent string) traceEcho {
	r.t.Helper()
	req := nats.NewMsg(clientsdk.LambdaSubject(name))
	if key != "" {
		req.Header.Set(key, traceparent)
	}
	req.Data = []byte(`{}`)
	reply, err := r.client.RequestMsg(req, 30*time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	if e := clientsdk.ErrorFromMsg(reply); e != nil {
		r.t.Fatalf("invoke %s: %v", name, e)
	}
	var echo traceEcho
	if err := json.Unmarshal(reply.Data, &echo); err != nil {
		r.t.Fatalf("%v: %s", err, reply.Data)
	}
	if echo.EnvTraceID != echo.ContextTraceID {
		r.t.Fatalf("_X_AMZN_TRACE_ID %q and the context's trace id %q differ", echo.EnvTraceID, echo.ContextTraceID)
	}
	return echo
}

// A NATS caller's traceparent header reaches an aws-lambda-go function as
// Lambda-Runtime-Trace-Id (hence _X_AMZN_TRACE_ID) in X-Ray form, with
// the caller's span as parent (no tracer records one of its own); an
// invalid one, or none, gives a new unsampled trace each time.
func TestInvocationTraceFromNATS(t *testing.T) {
	r := newRig(t)
	r.deployGo("tr", tracePkg, nil)
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	want := "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
	for _, key := range []string{"traceparent", "Traceparent"} {
		if got := r.invokeTraced("tr", key, caller).EnvTraceID; got != want {
			t.Errorf("header %s: the function got %q, want %q", key, got, want)
		}
	}
	seen := map[string]bool{}
	for _, bad := range []string{"", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		key := "traceparent"
		if bad == "" {
			key = ""
		}
		got := r.invokeTraced("tr", key, bad).EnvTraceID
		m := xrayRE.FindStringSubmatch(got)
		if m == nil || m[4] != "0" || strings.Contains(got, "4bf92f35") || strings.Contains(strings.ToLower(got), "00f067aa0ba902b7") || seen[m[1]+m[2]] {
			t.Errorf("traceparent %q: the function got %q, want a new unsampled trace", bad, got)
		}
		if m != nil {
			seen[m[1]+m[2]] = true
		}
	}
}

// With a tracer provider each invocation is a server span, a child of the
// caller's traceparent, named after the function, with its cold start and
// result; the function's parent is that span. Failures are spans with an
// error status; a stdio process gets the span in its environment.
func TestInvocationSpans(t *testing.T) {
	tp, col := testutil.OTLPProvider(t)
	r := newRig(t, lambdas.WithTracerProvider(tp))
	r.deployGo("tr", tracePkg, nil)
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	caller := "00-" + callerTrace + "-" + callerSpan + "-01"
	first := r.invokeTraced("tr", "traceparent", caller)
	second := r.invokeTraced("tr", "traceparent", caller)
	spans := map[string]testutil.Span{}
	for _, echo := range []traceEcho{first, second} {
		m := xrayRE.FindStringSubmatch(echo.EnvTraceID)
		if m == nil || m[1]+m[2] != callerTrace || m[3] == callerSpan || m[4] != "1" {
			t.Fatalf("the function got %q: want the caller's sampled trace with the invocation's span as parent", echo.EnvTraceID)
		}
		spans[m[3]] = col.WaitSpan(t, tp, "the invocation span "+m[3], func(s testutil.Span) bool { return s.SpanID() == m[3] })
	}
	for i, echo := range []traceEcho{first, second} {
		s := spans[xrayRE.FindStringSubmatch(echo.EnvTraceID)[3]]
		cold := []string{"true", "false"}[i]
		if s.Name != "tr" || s.TraceID() != callerTrace || s.ParentID() != callerSpan || s.Kind.String() != "SPAN_KIND_SERVER" ||
			s.Attr("faas.name") != "tr" || s.Attr("faas.coldstart") != cold || s.Attr("dartup.result") != "ok" ||
			len(s.Attr("faas.invocation_id")) != 36 || s.Scope != "github.com/dartup/dartup/lambdas" || s.Resource["service.name"] != "dartup" {
			t.Errorf("invocation %d: span %q trace %s parent %s kind %s attrs %v scope %q resource %v", i, s.Name, s.TraceID(), s.ParentID(), s.Kind, s.Attributes, s.Scope, s.Resource)
		}
	}

	// A stdio process: the span's context in its environment; a failure.
	script := `printf '%s %s' "$_X_AMZN_TRACE_ID" "$TRACEPARENT"; [ "$(cat)" = fail ] && exit 3; exit 0`
	s := spec(t, "sh", 1, func(l *clientsdk.LambdaSpec) { l.Protocol = clientsdk.ProtocolStdio })
	if err := r.deploy(s, lambdas.Command{Path: "/bin/sh", Args: []string{"-c", script}, Env: []string{"PATH=/usr/bin:/bin"}}); err != nil {
		t.Fatal(err)
	}
	req := nats.NewMsg(clientsdk.LambdaSubject("sh"))
	req.Header.Set("traceparent", caller)
	reply, err := r.client.RequestMsg(req, 30*time.Second)
	if err != nil || clientsdk.ErrorFromMsg(reply) != nil {
		t.Fatalf("stdio invoke: %v %v", err, clientsdk.ErrorFromMsg(reply))
	}
	xray, tparent, _ := strings.Cut(string(reply.Data), " ")
	hop, ok := clientsdk.ParseTraceparent(tparent)
	if !ok || hop.TraceIDString() != callerTrace || hop.XRay() != xray || !hop.Sampled() {
		t.Fatalf("stdio environment: _X_AMZN_TRACE_ID=%q TRACEPARENT=%q", xray, tparent)
	}
	sp := col.WaitSpan(t, tp, "the stdio span", func(s testutil.Span) bool { return s.SpanID() == hop.ParentIDString() })
	if sp.Name != "sh" || sp.ParentID() != callerSpan || sp.Attr("faas.coldstart") != "true" || sp.Attr("dartup.result") != "ok" {
		t.Errorf("stdio span %q parent %s attrs %v", sp.Name, sp.ParentID(), sp.Attributes)
	}
	req = nats.NewMsg(clientsdk.LambdaSubject("sh"))
	req.Data = []byte("fail")
	reply, err = r.client.RequestMsg(req, 30*time.Second)
	if err != nil || clientsdk.ErrorFromMsg(reply) == nil {
		t.Fatalf("a failing stdio process answered %v %s", err, reply.Data)
	}
	fail := col.WaitSpan(t, tp, "the failed invocation's span", func(s testutil.Span) bool { return s.Name == "sh" && s.Attr("dartup.result") != "ok" })
	if fail.Attr("dartup.result") != "function_error" || fail.Attr("dartup.error.code") != "500" || fail.Status.GetCode().String() != "STATUS_CODE_ERROR" ||
		fail.ParentID() != "" || fail.TraceID() == callerTrace {
		t.Errorf("failed invocation: span parent %q trace %s status %v attrs %v; want a root span with an error", fail.ParentID(), fail.TraceID(), fail.Status, fail.Attributes)
	}
}
