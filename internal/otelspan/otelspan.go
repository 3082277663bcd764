// Package otelspan starts OpenTelemetry spans from dartup's W3C trace
// context (clientsdk.TraceContext) and turns a span back into the hop to
// pass on. The gateway (broker) and the lambda host (lambdas) share it.
package otelspan

import (
	"context"

	"github.com/dartup/dartup/clientsdk"
	"go.opentelemetry.io/otel/trace"
)

// Start starts a span named name with tracer: a child of the caller's
// context in when ok (a remote parent, with tracestate when that parses),
// else a root. It returns the span's context and the hop to pass on: the
// span's own ids and sampling decision, or, from a tracer that makes no
// span of its own (a no-op provider), clientsdk.NextHop(in, ok).
func Start(ctx context.Context, tracer trace.Tracer, in clientsdk.TraceContext, ok bool, tracestate, name string,
	opts ...trace.SpanStartOption) (context.Context, trace.Span, clientsdk.TraceContext) {
	if ok {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: in.TraceID, SpanID: in.ParentID,
			TraceFlags: trace.TraceFlags(in.Flags & clientsdk.TraceFlagSampled), Remote: true})
		if tracestate != "" {
			if ts, err := trace.ParseTraceState(tracestate); err == nil {
				sc = sc.WithTraceState(ts)
			}
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	ctx, span := tracer.Start(ctx, name, opts...)
	sc := span.SpanContext()
	hop := clientsdk.TraceContext{TraceID: sc.TraceID(), ParentID: sc.SpanID(), Flags: byte(sc.TraceFlags())}
	if !hop.IsValid() || (ok && hop.ParentID == in.ParentID) {
		hop = clientsdk.NextHop(in, ok)
	}
	return ctx, span, hop
}
