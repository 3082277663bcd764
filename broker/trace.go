package broker

import (
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/otelspan"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The gateway is a hop of every request's W3C trace (docs/tracing.md): it
// takes the caller's traceparent when it is valid, or starts a trace, and
// replaces the request's traceparent header with its own hop's, whose
// parent id is the gateway's span. Everything after it (a lambda's event
// headers and NATS request, a daemon's proxied request, an async event)
// reads that header, so they all name the gateway's span as their parent.

// The trace headers' canonical HTTP spellings (r.Header's keys).
var (
	hTraceparent = http.CanonicalHeaderKey(clientsdk.HeaderTraceparent)
	hTracestate  = http.CanonicalHeaderKey(clientsdk.HeaderTracestate)
	hAmznTraceID = http.CanonicalHeaderKey(clientsdk.HeaderAmznTraceID)
)

// tracerName names the gateway's tracer (its instrumentation scope).
const tracerName = "github.com/dartup/dartup/broker"

// traced wraps the gateway's handler with its hop of the trace; with a
// TracerProvider in the config, each request is also a server span, but
// those for /healthz (health checks would crowd the traces).
func (g *gateway) traced(next http.Handler) http.Handler {
	var tracer trace.Tracer
	if tp := g.b.cfg.TracerProvider; tp != nil {
		tracer = tp.Tracer(tracerName)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, ok := acceptTrace(r.Header)
		if tracer == nil || r.URL.Path == "/healthz" {
			setHop(r.Header, clientsdk.NextHop(in, ok))
			next.ServeHTTP(w, r)
			return
		}
		serveSpan(tracer, w, r, in, ok, next)
	})
}

// acceptTrace reads the caller's traceparent from h (ok: exactly one, and
// valid) and keeps its tracestate only when that is valid and bounded
// (several tracestate headers become one); without a valid traceparent
// the tracestate is dropped too, as W3C says.
func acceptTrace(h http.Header) (clientsdk.TraceContext, bool) {
	in, ok := clientsdk.TraceFromValues(h[hTraceparent])
	states, found := h[hTracestate]
	if !found {
		return in, ok
	}
	if !ok {
		delete(h, hTracestate)
		return in, ok
	}
	if s, valid := clientsdk.CleanTracestate(states); !valid {
		delete(h, hTracestate)
	} else if len(states) > 1 {
		h[hTracestate] = []string{s}
	}
	return in, ok
}

// setHop makes hop the request's traceparent.
func setHop(h http.Header, hop clientsdk.TraceContext) {
	h[hTraceparent] = []string{hop.String()}
}

// requestTrace returns the gateway's hop of r (ok false only for a request
// that did not go through traced).
func requestTrace(r *http.Request) (clientsdk.TraceContext, bool) {
	return clientsdk.TraceFromValues(r.Header[hTraceparent])
}

// traceID returns r's trace id for logs, "" when it has none.
func traceID(r *http.Request) string {
	if tc, ok := requestTrace(r); ok {
		return tc.TraceIDString()
	}
	return ""
}

// warnRequest logs a request that the gateway could not serve, with its
// trace id: the first of its kind (msg, and the app or lambda named in args
// first), then at most one per warnEvery, with the count left out since.
func (g *gateway) warnRequest(r *http.Request, msg string, args ...any) {
	key := msg
	if len(args) >= 2 {
		if owner, ok := args[1].(string); ok {
			key += "\x00" + owner
		}
	}
	ok, skipped := g.warned.allow(key, time.Now())
	if !ok {
		return
	}
	args = append(args, "method", r.Method, "trace_id", traceID(r))
	if skipped > 0 {
		args = append(args, "like_it_since_last", skipped)
	}
	g.logger.Warn(msg, args...)
}

// serveSpan serves r inside a server span, a child of the caller's
// traceparent when there is one; the span's context becomes the
// request's traceparent.
func serveSpan(tracer trace.Tracer, w http.ResponseWriter, r *http.Request, in clientsdk.TraceContext, ok bool, next http.Handler) {
	method := spanMethod(r.Method)
	ctx, span, hop := otelspan.Start(r.Context(), tracer, in, ok, r.Header.Get(hTracestate), method,
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("http.request.method", method)))
	defer span.End()
	setHop(r.Header, hop)
	sw, ok := w.(*statusWriter) // the request metrics' (metrics_http.go), when they wrap this
	if !ok {
		sw = &statusWriter{ResponseWriter: w}
	}
	next.ServeHTTP(sw, r.WithContext(ctx))
	code := sw.status()
	span.SetAttributes(attribute.Int("http.response.status_code", code))
	if code >= 500 {
		span.SetStatus(codes.Error, http.StatusText(code))
	}
}

// nameSpan names r's span after the route that took it, once its owner
// is known to exist: owner is the app or lambda, route the declared route
// ("/users/{id}", a daemon's prefix, "/NAME" for a lambda's own path).
// Span names and attributes never hold a raw path or a request id.
func nameSpan(span trace.Span, method, kind, owner, route string) {
	span.SetName(spanMethod(method) + " " + route)
	span.SetAttributes(attribute.String("http.route", route), attribute.String("dartup.route.kind", kind),
		attribute.String("dartup.route.owner", owner))
}

// noteLambda notes lambda name's route in r's span, if it records one.
func noteLambda(r *http.Request, name string, info clientsdk.HTTPRequestInfo) {
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		route := info.Resource
		if route == "" {
			route = "/" + name
		}
		nameSpan(span, r.Method, "lambda", name, route)
	}
}

// noteDaemon notes a daemon's route in r's span, if it records one.
func noteDaemon(r *http.Request, rt route) {
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		nameSpan(span, r.Method, "daemon", rt.app, rt.Host+rt.Prefix)
	}
}

// spanMethod is the method as a span names it: a known method, or
// "_OTHER" (OpenTelemetry's convention), so that clients cannot make up
// span names.
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// setAmznTraceID puts the gateway's hop in X-Ray's form in h's
// X-Amzn-Trace-Id, as API Gateway and ALB put theirs in a lambda's event
// (a caller's own X-Amzn-Trace-Id is replaced).
func setAmznTraceID(h http.Header) {
	if tc, ok := clientsdk.TraceFromValues(h[hTraceparent]); ok {
		h[hAmznTraceID] = []string{tc.XRay()}
	}
}

// natsTrace returns the NATS headers that carry r's traceparent to a
// lambda (nil without one).
func natsTrace(r *http.Request) nats.Header {
	v := r.Header[hTraceparent]
	if len(v) != 1 {
		return nil
	}
	return nats.Header{clientsdk.HeaderTraceparent: v}
}

// keepTrace passes the gateway's traceparent and the kept tracestate on to
// a daemon, even when the client named them in its Connection header
// (which makes the proxy drop them as hop-by-hop).
func keepTrace(pr *httputil.ProxyRequest) {
	for _, k := range []string{hTraceparent, hTracestate} {
		if v, ok := pr.In.Header[k]; ok {
			pr.Out.Header[k] = v
		}
	}
}
