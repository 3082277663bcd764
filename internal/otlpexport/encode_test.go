package otlpexport_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/otlpexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// receiver is a loopback OTLP/HTTP endpoint that keeps each request's
// body and headers and answers 200 (or what answer says).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	answer func(n int, w http.ResponseWriter, r *http.Request) bool
}

func startReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request) bool) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := len(rc.bodies)
	rc.bodies = append(rc.bodies, body)
	rc.heads = append(rc.heads, r.Header.Clone())
	rc.mu.Unlock()
	if rc.answer != nil && rc.answer(n, w, r) {
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) requests() ([][]byte, []http.Header) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte(nil), rc.bodies...), append([]http.Header(nil), rc.heads...)
}

func decode(t *testing.T, body []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatalf("the body is not an ExportTraceServiceRequest: %v", err)
	}
	return &req
}

func noEnv(string) string { return "" }

// richSpans makes spans with every attribute kind, events, links, error
// and ok status, a parent and child, a remote parent with trace state,
// two scopes and spans over the SDK's limits (dropped counts).
func richSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0", attribute.String("service.name", "dartup"), attribute.Int("n", 3))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(res),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeCountLimit: 20, EventCountLimit: 2, LinkCountLimit: 2,
			AttributeValueLengthLimit: -1, AttributePerEventCountLimit: 1, AttributePerLinkCountLimit: 1}))
	gw := tp.Tracer("dartup/gateway", trace.WithInstrumentationVersion("1.2.3"), trace.WithSchemaURL("https://s/1"),
		trace.WithInstrumentationAttributes(attribute.String("scope.k", "v")))
	lh := tp.Tracer("dartup/lambda")

	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	remote := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x5f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, SpanID: trace.SpanID{9, 8, 7, 6, 5, 4, 3, 2},
		TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	linked := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xaa, 0xbb, 3}, SpanID: trace.SpanID{1, 1, 1}, TraceState: ts,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), remote)
	start := time.Unix(1_700_000_000, 123456789)
	ctx, root := gw.Start(ctx, "GET /hello", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("why", "retry"), attribute.Int("extra", 1)}}))
	root.SetAttributes(
		attribute.String("s", "héllo"), attribute.String("empty", ""), attribute.Bool("t", true), attribute.Bool("f", false),
		attribute.Int64("i", -42), attribute.Int64("zero", 0), attribute.Float64("pi", 3.14159), attribute.Float64("fzero", 0),
		attribute.BoolSlice("bs", []bool{true, false}), attribute.Int64Slice("is", []int64{1, -2, 1 << 40}),
		attribute.Float64Slice("fs", []float64{0.5, -1e300}), attribute.StringSlice("ss", []string{"a", "", "c"}),
		attribute.StringSlice("ss0", nil), attribute.ByteSlice("bytes", []byte{0, 1, 255}),
		attribute.Slice("mixed", attribute.StringValue("x"), attribute.IntValue(7), attribute.BoolSliceValue([]bool{true})),
		attribute.Map("m", attribute.String("k", "v"), attribute.Int("n", 2)),
		attribute.KeyValue{Key: "nothing"},
	)
	root.AddEvent("first", trace.WithTimestamp(start.Add(time.Millisecond)), trace.WithAttributes(attribute.Int("e", 1), attribute.Int("e2", 2)))
	root.AddEvent("second", trace.WithTimestamp(start.Add(2*time.Millisecond)))
	root.AddEvent("third (dropped)")
	_, child := lh.Start(ctx, "invoke", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start.Add(3*time.Millisecond)))
	child.SetStatus(codes.Ok, "")
	child.End(trace.WithTimestamp(start.Add(5 * time.Millisecond)))
	for i := range 25 {
		root.SetAttributes(attribute.Int("many."+string(rune('a'+i)), i))
	}
	root.SetStatus(codes.Error, "upstream failed")
	root.End(trace.WithTimestamp(start.Add(10 * time.Millisecond)))
	for _, k := range []trace.SpanKind{trace.SpanKindInternal, trace.SpanKindProducer, trace.SpanKindConsumer, trace.SpanKindUnspecified} {
		_, s := gw.Start(context.Background(), "kind-"+k.String(), trace.WithSpanKind(k))
		s.End()
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rec.Ended()
}

// TestEncodingMatchesTheSDKExporter sends the same spans with dartup's
// exporter and the SDK's otlptracehttp and compares the decoded requests.
func TestEncodingMatchesTheSDKExporter(t *testing.T) {
	spans := richSpans(t)
	ours, ref := startReceiver(t, nil), startReceiver(t, nil)
	exp, err := otlpexport.NewExporterFromEnv(ours.URL+"/v1/traces", noEnv, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	sdkExp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(ref.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sdkExp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	ob, oh := ours.requests()
	rb, _ := ref.requests()
	if len(ob) != 1 || len(rb) != 1 {
		t.Fatalf("requests: ours %d, the SDK's %d; want 1 each", len(ob), len(rb))
	}
	if ct := oh[0].Get("Content-Type"); ct != "application/x-protobuf" {
		t.Errorf("Content-Type %q", ct)
	}
	got, want := decode(t, ob[0]), decode(t, rb[0])
	checkFields(t, spans, got)
	// The SDK's exporter leaves a link's trace state out; ours sends it.
	for _, s := range allSpans(got) {
		for _, l := range s.Links {
			if l.TraceState != "vendor=abc,other=1" {
				t.Errorf("link trace state %q", l.TraceState)
			}
			l.TraceState = ""
		}
	}
	if !proto.Equal(got, want) {
		t.Errorf("the requests differ:\nours: %v\nSDK's: %v", got, want)
	}
}

func allSpans(req *coltracepb.ExportTraceServiceRequest) []*tracepb.Span {
	var out []*tracepb.Span
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			out = append(out, ss.Spans...)
		}
	}
	return out
}

// checkFields compares each decoded span with the span it came from.
func checkFields(t *testing.T, spans []sdktrace.ReadOnlySpan, req *coltracepb.ExportTraceServiceRequest) {
	t.Helper()
	if len(req.ResourceSpans) != 1 || len(req.ResourceSpans[0].ScopeSpans) != 2 {
		t.Fatalf("want 1 resource with 2 scopes: %v", req)
	}
	rs := req.ResourceSpans[0]
	if rs.SchemaUrl != "https://opentelemetry.io/schemas/1.26.0" || len(rs.Resource.Attributes) != 2 {
		t.Errorf("resource: %v (schema %q)", rs.Resource, rs.SchemaUrl)
	}
	sc := rs.ScopeSpans[0]
	if sc.Scope.Name != "dartup/gateway" {
		sc = rs.ScopeSpans[1]
	}
	if sc.Scope.Name != "dartup/gateway" || sc.Scope.Version != "1.2.3" || sc.SchemaUrl != "https://s/1" || len(sc.Scope.Attributes) != 1 {
		t.Errorf("scope: %v (schema %q)", sc.Scope, sc.SchemaUrl)
	}
	byID := map[string]*tracepb.Span{}
	for _, s := range allSpans(req) {
		byID[hex.EncodeToString(s.SpanId)] = s
	}
	if len(byID) != len(spans) {
		t.Fatalf("%d spans decoded, %d given", len(byID), len(spans))
	}
	for _, s := range spans {
		sid := s.SpanContext().SpanID()
		checkSpan(t, s, byID[hex.EncodeToString(sid[:])])
	}
}

var otlpStatus = map[codes.Code]tracepb.Status_StatusCode{
	codes.Unset: tracepb.Status_STATUS_CODE_UNSET, codes.Ok: tracepb.Status_STATUS_CODE_OK, codes.Error: tracepb.Status_STATUS_CODE_ERROR,
}

func checkSpan(t *testing.T, s sdktrace.ReadOnlySpan, got *tracepb.Span) {
	t.Helper()
	sc, parent := s.SpanContext(), s.Parent()
	tid := sc.TraceID()
	wantFlags := uint32(sc.TraceFlags()) | 0x100
	if parent.IsRemote() {
		wantFlags |= 0x200
	}
	switch {
	case got == nil:
		t.Fatalf("span %q not sent", s.Name())
	case got.Name != s.Name() || !bytes.Equal(got.TraceId, tid[:]) || got.TraceState != sc.TraceState().String():
		t.Errorf("span %q: name %q, trace %x, state %q", s.Name(), got.Name, got.TraceId, got.TraceState)
	case parent.IsValid() && hex.EncodeToString(got.ParentSpanId) != parent.SpanID().String():
		t.Errorf("span %q: parent %x, want %s", s.Name(), got.ParentSpanId, parent.SpanID())
	case !parent.IsValid() && len(got.ParentSpanId) != 0:
		t.Errorf("span %q: a root with parent %x", s.Name(), got.ParentSpanId)
	case int(got.Kind) != int(s.SpanKind()):
		t.Errorf("span %q: kind %v, want %v", s.Name(), got.Kind, s.SpanKind())
	case got.StartTimeUnixNano != uint64(s.StartTime().UnixNano()) || got.EndTimeUnixNano != uint64(s.EndTime().UnixNano()):
		t.Errorf("span %q: times %d..%d", s.Name(), got.StartTimeUnixNano, got.EndTimeUnixNano)
	case got.Status.GetCode() != otlpStatus[s.Status().Code] || got.Status.GetMessage() != s.Status().Description:
		t.Errorf("span %q: status %v, want %v", s.Name(), got.Status, s.Status())
	case got.Flags != wantFlags:
		t.Errorf("span %q: flags %#x, want %#x", s.Name(), got.Flags, wantFlags)
	case len(got.Attributes) != len(s.Attributes()) || got.DroppedAttributesCount != uint32(s.DroppedAttributes()):
		t.Errorf("span %q: %d attributes (%d dropped), want %d (%d)", s.Name(), len(got.Attributes), got.DroppedAttributesCount, len(s.Attributes()), s.DroppedAttributes())
	case len(got.Events) != len(s.Events()) || got.DroppedEventsCount != uint32(s.DroppedEvents()):
		t.Errorf("span %q: %d events (%d dropped)", s.Name(), len(got.Events), got.DroppedEventsCount)
	case len(got.Links) != len(s.Links()) || got.DroppedLinksCount != uint32(s.DroppedLinks()):
		t.Errorf("span %q: %d links", s.Name(), len(got.Links))
	}
	for i, kv := range s.Attributes() {
		if got.Attributes[i].Key != string(kv.Key) || !sameValue(kv.Value, got.Attributes[i].Value) {
			t.Errorf("span %q: attribute %d is %v, want %s=%s", s.Name(), i, got.Attributes[i], kv.Key, kv.Value.Emit())
		}
	}
	for i, e := range s.Events() {
		g := got.Events[i]
		if g.Name != e.Name || g.TimeUnixNano != uint64(e.Time.UnixNano()) || len(g.Attributes) != len(e.Attributes) || g.DroppedAttributesCount != uint32(e.DroppedAttributeCount) {
			t.Errorf("span %q: event %d is %v, want %+v", s.Name(), i, g, e)
		}
	}
	for i, l := range s.Links() {
		g := got.Links[i]
		if hex.EncodeToString(g.SpanId) != l.SpanContext.SpanID().String() || len(g.Attributes) != len(l.Attributes) || g.DroppedAttributesCount != uint32(l.DroppedAttributeCount) || g.Flags != 0x100 {
			t.Errorf("span %q: link %d is %v, want %+v", s.Name(), i, g, l)
		}
	}
}

// sameValue compares an attribute value with a decoded AnyValue.
func sameValue(v attribute.Value, a *commonpb.AnyValue) bool {
	switch v.Type() {
	case attribute.BOOL:
		return a.GetValue() != nil && a.GetBoolValue() == v.AsBool()
	case attribute.INT64:
		return a.GetValue() != nil && a.GetIntValue() == v.AsInt64()
	case attribute.FLOAT64:
		return a.GetValue() != nil && a.GetDoubleValue() == v.AsFloat64()
	case attribute.STRING:
		return a.GetValue() != nil && a.GetStringValue() == v.AsString()
	case attribute.BYTESLICE:
		return bytes.Equal(a.GetBytesValue(), v.AsByteSlice())
	case attribute.EMPTY:
		return a.GetValue() == nil
	case attribute.MAP:
		kvs := a.GetKvlistValue().GetValues()
		return len(kvs) == len(v.AsMap()) && kvs[0].Key == string(v.AsMap()[0].Key) && sameValue(v.AsMap()[0].Value, kvs[0].Value)
	}
	vals := a.GetArrayValue()
	if vals == nil {
		return false
	}
	var want []attribute.Value
	switch v.Type() {
	case attribute.BOOLSLICE:
		want = each(v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		want = each(v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		want = each(v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		want = each(v.AsStringSlice(), attribute.StringValue)
	default:
		want = v.AsSlice()
	}
	if len(vals.Values) != len(want) {
		return false
	}
	for i := range want {
		if !sameValue(want[i], vals.Values[i]) {
			return false
		}
	}
	return true
}

func each[T any](xs []T, mk func(T) attribute.Value) []attribute.Value {
	var out []attribute.Value
	for _, x := range xs {
		out = append(out, mk(x))
	}
	return out
}

// TestHugeSpanExports checks a span far over the SDK's attribute count
// limit, with a 1 MiB value, still goes out whole.
func TestHugeSpanExports(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, s := tp.Tracer("t").Start(context.Background(), "huge")
	big := strings.Repeat("x", 1<<20)
	s.SetAttributes(attribute.String("big", big))
	for i := range 1000 {
		s.SetAttributes(attribute.Int("a"+strings.Repeat("b", i%50)+string(rune('0'+i%10))+hex.EncodeToString([]byte{byte(i >> 8), byte(i)}), i))
	}
	s.End()
	rc := startReceiver(t, nil)
	exp, err := otlpexport.NewExporterFromEnv(rc.URL, noEnv, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(context.Background(), rec.Ended()); err != nil {
		t.Fatal(err)
	}
	bodies, _ := rc.requests()
	got := allSpans(decode(t, bodies[0]))
	if len(got) != 1 || len(got[0].Attributes) != 128 || got[0].DroppedAttributesCount != 873 || got[0].Attributes[0].Value.GetStringValue() != big {
		t.Fatalf("got %d spans, %d attributes, %d dropped", len(got), len(got[0].Attributes), got[0].DroppedAttributesCount)
	}
}

// TestGroupsByResourceAndScope checks spans of two resources go in two
// ResourceSpans, in the order they came.
func TestGroupsByResourceAndScope(t *testing.T) {
	var spans []sdktrace.ReadOnlySpan
	for _, name := range []string{"a", "b"} {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))))
		for _, scope := range []string{"x", "y", "x"} {
			_, s := tp.Tracer(scope).Start(context.Background(), name+scope)
			s.End()
		}
		spans = append(spans, rec.Ended()...)
	}
	rc := startReceiver(t, nil)
	exp, err := otlpexport.NewExporterFromEnv(rc.URL, noEnv, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	bodies, _ := rc.requests()
	var got []string
	for _, rs := range decode(t, bodies[0]).ResourceSpans {
		var names []string
		for _, ss := range rs.ScopeSpans {
			var n []string
			for _, s := range ss.Spans {
				n = append(n, s.Name)
			}
			names = append(names, ss.Scope.Name+":"+strings.Join(n, "+"))
		}
		got = append(got, rs.Resource.Attributes[0].Value.GetStringValue()+"["+strings.Join(names, " ")+"]")
	}
	sort.Strings(got)
	if want := "a[x:ax+ax y:ay] b[x:bx+bx y:by]"; strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
}
