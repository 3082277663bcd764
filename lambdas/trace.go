package lambdas

import (
	"context"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/otelspan"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Each invocation is a hop of a W3C trace (docs/tracing.md): the caller's
// traceparent NATS header (the gateway's, an async event's, or a `nats
// req -H traceparent:…` caller's) when it is valid, else a new trace. The
// function gets the hop as Lambda-Runtime-Trace-Id (X-Ray form; aws-lambda-go
// puts it in _X_AMZN_TRACE_ID), a stdio process in its environment, and
// the Manager's logs of the invocation name its trace id. With a
// TracerProvider the invocation is also a span, and the function's parent
// is that span.

// tracerName names the lambda host's tracer (its instrumentation scope).
const tracerName = "github.com/dartup/dartup/lambdas"

// maxSpanErrorType bounds the error type put in a span: it comes from the
// function's error body.
const maxSpanErrorType = 128

// WithTracerProvider records a span per invocation with tp (nil: none,
// the default). The Manager takes its tracer once; no global provider is
// used.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) error {
		o.tracer = nil
		if tp != nil {
			o.tracer = tp.Tracer(tracerName)
		}
		return nil
	}
}

// invTrace is an invocation's hop of its trace.
type invTrace struct {
	// tc is what the function is given: the span's context, else the
	// caller's traceparent as it came (its parent is the caller's span),
	// else a new trace.
	tc   clientsdk.TraceContext
	span trace.Span // nil without a tracer
}

// startTrace reads inv's trace from its request's headers and, with a
// tracer, starts its span at the time inv was received.
func (f *function) startTrace(inv *invocation) invTrace {
	h := inv.msg.Header
	in, ok := clientsdk.TraceFromNATS(h)
	tracer := f.m.opts.tracer
	if tracer == nil {
		if !ok {
			in = clientsdk.NewTrace()
		}
		return invTrace{tc: in}
	}
	_, span, hop := otelspan.Start(context.Background(), tracer, in, ok, h.Get(clientsdk.HeaderTracestate), f.name,
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(inv.received),
		trace.WithAttributes(attribute.String("faas.name", f.name), attribute.String("faas.invocation_id", inv.id),
			attribute.String("dartup.node", f.m.opts.nodeID)))
	return invTrace{tc: hop, span: span}
}

// traceID is the invocation's trace id, for logs.
func (t *invTrace) traceID() string { return t.tc.TraceIDString() }

// coldStart notes in the span whether the worker that took the
// invocation served its first one (isCold is only called when a span
// records).
func (t *invTrace) coldStart(isCold func() bool) {
	if t.span != nil && t.span.IsRecording() {
		t.span.SetAttributes(attribute.Bool("faas.coldstart", isCold()))
	}
}

// stdioEnv is what a stdio process is told of its invocation's trace (a
// process serves one invocation, so its environment can carry it):
// _X_AMZN_TRACE_ID as AWS sets it, and TRACEPARENT (OpenTelemetry's
// environment carrier). Its process is a cold start.
func (t *invTrace) stdioEnv() []string {
	t.coldStart(func() bool { return true })
	return []string{"_X_AMZN_TRACE_ID=" + t.tc.XRay(), "TRACEPARENT=" + t.tc.String()}
}

// end ends the span with the invocation's result (e nil: success).
func (t *invTrace) end(e *clientsdk.Error) { t.endAt(e, time.Now()) }

// endAt ends the span at at, with the invocation's result.
func (t *invTrace) endAt(e *clientsdk.Error, at time.Time) {
	if t.span == nil {
		return
	}
	code := http.StatusOK
	if e != nil {
		code = e.Code
		typ := spanText(e.Type, maxSpanErrorType)
		t.span.SetAttributes(attribute.String("dartup.error.type", typ), attribute.Int("dartup.error.code", e.Code))
		t.span.SetStatus(codes.Error, typ)
	}
	t.span.SetAttributes(attribute.String("dartup.result", resultOf(code)))
	t.span.End(trace.WithTimestamp(at))
}

// spanText is s cut to at most max bytes on a character boundary, with
// invalid UTF-8 replaced: a function's error type comes from its own bytes
// (a Runtime API header), and one string that is not UTF-8 would make the
// exporter drop the whole batch it is in.
func spanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// resultOf names an invocation's outcome by the code it was answered with.
func resultOf(code int) string {
	switch code {
	case http.StatusOK:
		return "ok"
	case http.StatusInternalServerError:
		return "function_error"
	case http.StatusTooManyRequests:
		return "throttled"
	case http.StatusGatewayTimeout:
		return "timeout"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "runtime_error"
}

// servedNone reports whether w has answered no invocation yet: the one it
// takes now is its cold start's.
func (w *worker) servedNone() bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.served == 0
}
