package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// tracedGet sends GET url with a caller's traceparent and returns the
// status and body.
func tracedGet(t *testing.T, url, traceparent string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("traceparent", traceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// `dartup serve --otlp-endpoint` passes a caller's trace to a lambda and a
// daemon, and exports the gateway's and the invocation's spans to a real
// OTLP/HTTP collector on loopback; spans still queued when serve stops
// are flushed before it exits. A bad endpoint is a usage error.
func TestTraceThroughServe(t *testing.T) {
	out, err := exec.Command(testutil.Dartup(t), "serve", "--data", testutil.TempDir(t), "--nats-addr", "127.0.0.1:0", "-p", "0",
		"--otlp-endpoint", "http://user:pw@127.0.0.1:4318").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "OTEL_EXPORTER_OTLP_HEADERS") || strings.Contains(string(out), "pw@") {
		t.Fatalf("serve with a password in --otlp-endpoint: %v\n%s", err, out)
	}
	out, err = exec.Command(testutil.Dartup(t), "runner", "--server", "nats://127.0.0.1:1", "--data", testutil.TempDir(t),
		"--otlp-endpoint", "grpc://127.0.0.1:4317").CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "http:// or https://") {
		t.Fatalf("runner with a gRPC --otlp-endpoint: %v\n%s", err, out)
	}

	col := testutil.StartOTLP(t)
	// Spans wait in the batch (10 minutes) until serve stops: its shutdown
	// must flush them.
	s := startServeEnv(t, []string{"OTEL_BSP_SCHEDULE_DELAY=600000"}, testutil.TempDir(t), "--otlp-endpoint", col.URL)
	s.dartup("push", "--lambda", "--name", "trace", testutil.BuildGo(t, "./internal/testutil/workers/lambdatrace"))
	s.dartup("push", "--name", "traceweb", "--http", "/headers", testutil.BuildGo(t, "./internal/testutil/workers/web"))
	const callerTrace, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	caller := "00-" + callerTrace + "-" + callerSpan + "-01"

	code, body := tracedGet(t, s.httpURL+"/trace", caller)
	var echo struct {
		EnvTraceID  string `json:"env_trace_id"`
		Traceparent string `json:"traceparent"`
	}
	if err := json.Unmarshal(body, &echo); err != nil || code != 200 {
		t.Fatalf("GET /trace: %d %v %s", code, err, body)
	}
	lambdaHop, ok := clientsdk.ParseTraceparent(echo.Traceparent)
	if !ok || lambdaHop.TraceIDString() != callerTrace || lambdaHop.ParentIDString() == callerSpan ||
		!strings.HasPrefix(echo.EnvTraceID, "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=") {
		t.Fatalf("the lambda got traceparent %q, _X_AMZN_TRACE_ID %q", echo.Traceparent, echo.EnvTraceID)
	}

	var headers map[string][]string
	testutil.WaitFor(t, 30*time.Second, "the daemon's route", func() bool {
		code, body := tracedGet(t, s.httpURL+"/headers", caller)
		return code == 200 && json.Unmarshal(body, &headers) == nil
	})
	daemonHop, ok := clientsdk.TraceFromValues(headers["Traceparent"])
	if !ok || daemonHop.TraceIDString() != callerTrace || daemonHop.ParentIDString() == callerSpan {
		t.Fatalf("the daemon got traceparent %q", headers["Traceparent"])
	}

	s.stop() // returns once serve has exited
	byID := map[string]testutil.Span{}
	for _, sp := range col.Spans() {
		byID[sp.SpanID()] = sp
	}
	gw, ok := byID[lambdaHop.ParentIDString()]
	if !ok || gw.Name != "GET /trace" || gw.ParentID() != callerSpan || gw.Attr("dartup.route.owner") != "trace" || gw.Attr("http.response.status_code") != "200" {
		t.Fatalf("no gateway span for the lambda's request (%+v); got %d spans: %v", gw, len(byID), spanNames(col.Spans()))
	}
	var inv testutil.Span
	for _, sp := range col.Spans() {
		if sp.ParentID() == gw.SpanID() {
			inv = sp
		}
	}
	if inv.Span == nil || inv.Name != "trace" || inv.TraceID() != callerTrace || !strings.Contains(echo.EnvTraceID, "Parent="+inv.SpanID()+";") {
		t.Fatalf("no invocation span under the gateway's: %v (the function got %s)", spanNames(col.Spans()), echo.EnvTraceID)
	}
	dw, ok := byID[daemonHop.ParentIDString()]
	if !ok || dw.Attr("dartup.route.owner") != "traceweb" || dw.Attr("dartup.route.kind") != "daemon" || dw.ParentID() != callerSpan {
		t.Fatalf("no gateway span for the daemon's request: %+v", dw)
	}
	if gw.Resource["service.name"] != "dartup" || gw.Resource["service.instance.id"] == "" {
		t.Fatalf("resource %v", gw.Resource)
	}
	if bad := col.Bad(); len(bad) > 0 {
		t.Fatalf("the collector refused exports: %v", bad)
	}
}

func spanNames(spans []testutil.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name+" "+s.SpanID()+"<"+s.ParentID())
	}
	return out
}
