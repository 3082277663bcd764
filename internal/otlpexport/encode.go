package otlpexport

import (
	"math"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP field numbers (opentelemetry-proto, v1) this file writes.
const (
	fRequestResourceSpans = 1 // ExportTraceServiceRequest.resource_spans

	fResourceSpansResource   = 1 // ResourceSpans.resource
	fResourceSpansScopeSpans = 2 // ResourceSpans.scope_spans
	fResourceSpansSchemaURL  = 3 // ResourceSpans.schema_url
	fResourceAttributes      = 1 // Resource.attributes

	fScopeSpansScope     = 1 // ScopeSpans.scope
	fScopeSpansSpans     = 2 // ScopeSpans.spans
	fScopeSpansSchemaURL = 3 // ScopeSpans.schema_url
	fScopeName           = 1 // InstrumentationScope.name
	fScopeVersion        = 2 // InstrumentationScope.version
	fScopeAttributes     = 3 // InstrumentationScope.attributes

	fSpanTraceID        = 1
	fSpanSpanID         = 2
	fSpanTraceState     = 3
	fSpanParentSpanID   = 4
	fSpanName           = 5
	fSpanKind           = 6
	fSpanStart          = 7
	fSpanEnd            = 8
	fSpanAttributes     = 9
	fSpanDroppedAttrs   = 10
	fSpanEvents         = 11
	fSpanDroppedEvents  = 12
	fSpanLinks          = 13
	fSpanDroppedLinks   = 14
	fSpanStatus         = 15
	fSpanFlags          = 16
	fEventTime          = 1
	fEventName          = 2
	fEventAttributes    = 3
	fEventDroppedAttrs  = 4
	fLinkTraceID        = 1
	fLinkSpanID         = 2
	fLinkTraceState     = 3
	fLinkAttributes     = 4
	fLinkDroppedAttrs   = 5
	fLinkFlags          = 6
	fStatusMessage      = 2
	fStatusCode         = 3
	fKeyValueKey        = 1
	fKeyValueValue      = 2
	fAnyString          = 1
	fAnyBool            = 2
	fAnyInt             = 3
	fAnyDouble          = 4
	fAnyArray           = 5
	fAnyKvlist          = 6
	fAnyBytes           = 7
	fArrayValues        = 1 // ArrayValue.values and KeyValueList.values
	flagHasIsRemote     = 0x100
	flagIsRemote        = 0x200
	statusCodeOK        = 1 // OTLP STATUS_CODE_OK (otel-go's codes.Ok is 2)
	statusCodeError     = 2 // OTLP STATUS_CODE_ERROR (otel-go's codes.Error is 1)
	invalidAttributeVal = "INVALID"
)

// group is the spans of one resource and instrumentation scope, in the
// order they came.
type group struct {
	res   *resource.Resource
	scope instrumentation.Scope
	spans []sdktrace.ReadOnlySpan
}

// groupSpans groups spans by resource, then by scope, as the SDK's OTLP
// exporter does: resources and scopes keep the order they first appear in.
func groupSpans(spans []sdktrace.ReadOnlySpan) [][]*group {
	type key struct {
		r  attribute.Distinct
		is instrumentation.Scope
	}
	byRes := map[attribute.Distinct]int{}
	byKey := map[key]*group{}
	var out [][]*group
	for _, s := range spans {
		if s == nil {
			continue
		}
		k := key{s.Resource().Equivalent(), s.InstrumentationScope()}
		if g := byKey[k]; g != nil {
			g.spans = append(g.spans, s)
			continue
		}
		g := &group{res: s.Resource(), scope: k.is, spans: []sdktrace.ReadOnlySpan{s}}
		byKey[k] = g
		i, ok := byRes[k.r]
		if !ok {
			i = len(out)
			byRes[k.r] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], g)
	}
	return out
}

// encodeRequest appends the ExportTraceServiceRequest for spans to b.
func encodeRequest(b []byte, spans []sdktrace.ReadOnlySpan) []byte {
	for _, groups := range groupSpans(spans) {
		b = appendMessage(b, fRequestResourceSpans, func(b []byte) []byte { return appendResourceSpans(b, groups) })
	}
	return b
}

// appendMessage appends field num holding the message body writes.
func appendMessage(b []byte, num protowire.Number, body func([]byte) []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	start := len(b)
	b = body(b)
	n := len(b) - start
	size := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size)...)
	copy(b[start+size:], b[start:start+n])
	protowire.AppendVarint(b[start:start], uint64(n))
	return b
}

// appendString appends a string field, omitted when empty (proto3).
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendVarint appends a varint field, omitted when 0 (proto3).
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendFixed64 appends a fixed64 field, omitted when 0 (proto3).
func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

// appendFixed32 appends a fixed32 field, omitted when 0 (proto3).
func appendFixed32(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}

func appendResourceSpans(b []byte, groups []*group) []byte {
	res := groups[0].res
	if res != nil {
		b = appendMessage(b, fResourceSpansResource, func(b []byte) []byte {
			return appendAttributes(b, fResourceAttributes, res.Attributes())
		})
	}
	for _, g := range groups {
		b = appendMessage(b, fResourceSpansScopeSpans, func(b []byte) []byte { return appendScopeSpans(b, g) })
	}
	if res != nil {
		b = appendString(b, fResourceSpansSchemaURL, res.SchemaURL())
	}
	return b
}

func appendScopeSpans(b []byte, g *group) []byte {
	if g.scope != (instrumentation.Scope{}) {
		b = appendMessage(b, fScopeSpansScope, func(b []byte) []byte {
			b = appendString(b, fScopeName, g.scope.Name)
			b = appendString(b, fScopeVersion, g.scope.Version)
			return appendAttributes(b, fScopeAttributes, g.scope.Attributes.ToSlice())
		})
	}
	for _, s := range g.spans {
		b = appendMessage(b, fScopeSpansSpans, func(b []byte) []byte { return appendSpan(b, s) })
	}
	return appendString(b, fScopeSpansSchemaURL, g.scope.SchemaURL)
}

// appendSpan writes one Span's fields.
func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc, parent := s.SpanContext(), s.Parent()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytesField(b, fSpanTraceID, tid[:])
	b = appendBytesField(b, fSpanSpanID, sid[:])
	b = appendString(b, fSpanTraceState, sc.TraceState().String())
	if psid := parent.SpanID(); psid.IsValid() {
		b = appendBytesField(b, fSpanParentSpanID, psid[:])
	}
	b = appendString(b, fSpanName, s.Name())
	b = appendVarint(b, fSpanKind, uint64(spanKind(s.SpanKind())))
	b = appendFixed64(b, fSpanStart, unixNano(s.StartTime().UnixNano()))
	b = appendFixed64(b, fSpanEnd, unixNano(s.EndTime().UnixNano()))
	b = appendAttributes(b, fSpanAttributes, s.Attributes())
	b = appendVarint(b, fSpanDroppedAttrs, clampUint32(s.DroppedAttributes()))
	for _, e := range s.Events() {
		b = appendMessage(b, fSpanEvents, func(b []byte) []byte {
			b = appendFixed64(b, fEventTime, unixNano(e.Time.UnixNano()))
			b = appendString(b, fEventName, e.Name)
			b = appendAttributes(b, fEventAttributes, e.Attributes)
			return appendVarint(b, fEventDroppedAttrs, clampUint32(e.DroppedAttributeCount))
		})
	}
	b = appendVarint(b, fSpanDroppedEvents, clampUint32(s.DroppedEvents()))
	for _, l := range s.Links() {
		b = appendMessage(b, fSpanLinks, func(b []byte) []byte { return appendLink(b, l) })
	}
	b = appendVarint(b, fSpanDroppedLinks, clampUint32(s.DroppedLinks()))
	st := s.Status()
	b = appendMessage(b, fSpanStatus, func(b []byte) []byte {
		b = appendString(b, fStatusMessage, st.Description)
		return appendVarint(b, fStatusCode, statusCode(st.Code))
	})
	return appendFixed32(b, fSpanFlags, spanFlags(sc.TraceFlags(), parent))
}

func appendLink(b []byte, l sdktrace.Link) []byte {
	tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
	b = appendBytesField(b, fLinkTraceID, tid[:])
	b = appendBytesField(b, fLinkSpanID, sid[:])
	b = appendString(b, fLinkTraceState, l.SpanContext.TraceState().String())
	b = appendAttributes(b, fLinkAttributes, l.Attributes)
	b = appendVarint(b, fLinkDroppedAttrs, clampUint32(l.DroppedAttributeCount))
	return appendFixed32(b, fLinkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
}

// appendBytesField appends a bytes field, omitted when empty (proto3).
func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendAttributes appends one KeyValue field num for each attribute.
func appendAttributes(b []byte, num protowire.Number, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendMessage(b, num, func(b []byte) []byte {
			b = appendString(b, fKeyValueKey, string(kv.Key))
			return appendMessage(b, fKeyValueValue, func(b []byte) []byte { return appendValue(b, kv.Value) })
		})
	}
	return b
}

// appendValue writes an AnyValue's fields. Its oneof field is written even
// when it holds a zero (a false, a 0, an empty string are values).
func appendValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.EMPTY:
		return b
	case attribute.BOOL:
		return protowire.AppendVarint(protowire.AppendTag(b, fAnyBool, protowire.VarintType), protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		return protowire.AppendVarint(protowire.AppendTag(b, fAnyInt, protowire.VarintType), uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return protowire.AppendFixed64(protowire.AppendTag(b, fAnyDouble, protowire.Fixed64Type), math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		return protowire.AppendString(protowire.AppendTag(b, fAnyString, protowire.BytesType), v.AsString())
	case attribute.BYTESLICE:
		return protowire.AppendBytes(protowire.AppendTag(b, fAnyBytes, protowire.BytesType), v.AsByteSlice())
	case attribute.MAP:
		return appendMessage(b, fAnyKvlist, func(b []byte) []byte { return appendAttributes(b, fArrayValues, v.AsMap()) })
	case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE, attribute.SLICE:
		return appendMessage(b, fAnyArray, func(b []byte) []byte { return appendArray(b, v) })
	default:
		return protowire.AppendString(protowire.AppendTag(b, fAnyString, protowire.BytesType), invalidAttributeVal)
	}
}

// appendArray writes an ArrayValue's values for one of the slice kinds.
func appendArray(b []byte, v attribute.Value) []byte {
	var vals []attribute.Value
	switch v.Type() {
	case attribute.BOOLSLICE:
		vals = valuesOf(v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		vals = valuesOf(v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		vals = valuesOf(v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		vals = valuesOf(v.AsStringSlice(), attribute.StringValue)
	default:
		vals = v.AsSlice()
	}
	for _, e := range vals {
		b = appendMessage(b, fArrayValues, func(b []byte) []byte { return appendValue(b, e) })
	}
	return b
}

// valuesOf turns a typed slice into attribute values.
func valuesOf[T any](in []T, mk func(T) attribute.Value) []attribute.Value {
	out := make([]attribute.Value, len(in))
	for i, x := range in {
		out[i] = mk(x)
	}
	return out
}

// spanKind maps otel-go's span kinds to OTLP's (the same numbers today,
// mapped by name so a change in either shows here).
func spanKind(k trace.SpanKind) uint64 {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	default:
		return 0
	}
}

// statusCode maps otel-go's status codes (Unset 0, Error 1, Ok 2) to
// OTLP's (UNSET 0, OK 1, ERROR 2).
func statusCode(c codes.Code) uint64 {
	switch c {
	case codes.Ok:
		return statusCodeOK
	case codes.Error:
		return statusCodeError
	default:
		return 0
	}
}

// spanFlags is the W3C trace flags in the low byte, with the bits that say
// whether the parent (or a link's context) is remote.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	f := uint32(tf) | flagHasIsRemote
	if parent.IsRemote() {
		f |= flagIsRemote
	}
	return f
}

// unixNano is a time in nanoseconds, 0 for one before 1970.
func unixNano(ns int64) uint64 {
	return uint64(max(0, ns))
}

// clampUint32 bounds a count to OTLP's uint32.
func clampUint32(v int) uint64 {
	return uint64(min(max(v, 0), math.MaxUint32))
}
