package testutil

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/otlpexport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OTLPCollector is a real OTLP/HTTP trace receiver on loopback: it decodes
// each POST /v1/traces (protobuf, gzip or not) into an
// ExportTraceServiceRequest and keeps its spans.
type OTLPCollector struct {
	// URL is the collector's base URL (http://127.0.0.1:PORT); exporters
	// send to URL + "/v1/traces".
	URL string

	mu       sync.Mutex
	spans    []Span
	requests int
	bad      []string
}

// Span is one received span with its resource's and scope's names.
type Span struct {
	*tracepb.Span
	// Resource are the span's resource attributes (service.name, …).
	Resource map[string]string
	// Scope is the name of the tracer that made it.
	Scope string
}

// TraceID returns the span's trace id in hex.
func (s Span) TraceID() string { return hex.EncodeToString(s.Span.TraceId) }

// SpanID returns the span's id in hex.
func (s Span) SpanID() string { return hex.EncodeToString(s.Span.SpanId) }

// ParentID returns the span's parent id in hex ("" for a root).
func (s Span) ParentID() string { return hex.EncodeToString(s.Span.ParentSpanId) }

// Attr returns the string form of attribute key ("" when absent).
func (s Span) Attr(key string) string { return attrString(s.Span.Attributes, key) }

func attrString(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key != key {
			continue
		}
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_BoolValue:
			if v.BoolValue {
				return "true"
			}
			return "false"
		}
	}
	return ""
}

// StartOTLP starts a collector, stopped in t.Cleanup.
func StartOTLP(t testing.TB) *OTLPCollector {
	t.Helper()
	c := &OTLPCollector{}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *OTLPCollector) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		c.fail(r.Method + " " + r.URL.Path)
		http.Error(w, "not an OTLP trace export", http.StatusNotFound)
		return
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, 16<<20)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			c.fail("gzip: " + err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(raw, &req)
	}
	if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
		c.fail("undecodable export (" + r.Header.Get("Content-Type") + ")")
		http.Error(w, "cannot decode", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests++
	for _, rs := range req.ResourceSpans {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.Key] = attrString(rs.Resource.Attributes, kv.Key)
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				c.spans = append(c.spans, Span{Span: s, Resource: res, Scope: ss.GetScope().GetName()})
			}
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (c *OTLPCollector) fail(what string) {
	c.mu.Lock()
	c.bad = append(c.bad, what)
	c.mu.Unlock()
}

// Spans returns the spans received so far.
func (c *OTLPCollector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

// Bad returns the requests the collector could not take (wrong path,
// undecodable body).
func (c *OTLPCollector) Bad() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.bad...)
}

// Find returns the first received span for which match is true.
func (c *OTLPCollector) Find(match func(Span) bool) (Span, bool) {
	for _, s := range c.Spans() {
		if match(s) {
			return s, true
		}
	}
	return Span{}, false
}

// OTLPProvider starts a collector and a real SDK tracer provider that
// exports to it, as `dartup serve --otlp-endpoint` builds one; both are
// stopped in t.Cleanup.
func OTLPProvider(t testing.TB) (*sdktrace.TracerProvider, *OTLPCollector) {
	t.Helper()
	col := StartOTLP(t)
	u, err := otlpexport.ParseEndpoint(col.URL)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := otlpexport.New(context.Background(), otlpexport.Config{Endpoint: u, InstanceID: "test", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, col
}

// WaitSpan flushes tp until the collector has a span that match accepts,
// and fails the test when it refused an export.
func (c *OTLPCollector) WaitSpan(t testing.TB, tp *sdktrace.TracerProvider, what string, match func(Span) bool) Span {
	t.Helper()
	var s Span
	WaitFor(t, 10*time.Second, what, func() bool {
		_ = tp.ForceFlush(context.Background())
		var ok bool
		s, ok = c.Find(match)
		return ok
	})
	if bad := c.Bad(); len(bad) > 0 {
		t.Fatalf("the collector refused exports: %v", bad)
	}
	return s
}
