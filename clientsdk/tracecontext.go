package clientsdk

import (
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Trace context (W3C Trace Context, https://www.w3.org/TR/trace-context/):
// the HTTP gateway accepts a caller's traceparent or starts a trace, gives
// the request its own span id (the gateway hop) and passes traceparent on
// to lambdas (NATS header, event headers, the Runtime API's X-Ray trace id)
// and to daemons behind routes. docs/tracing.md tells the whole path.

// Trace context header names. NATS headers are case-sensitive: dartup sets
// and reads these lower-case spellings (a NATS caller's "Traceparent" is
// read too); on HTTP any case is the same header.
const (
	// HeaderTraceparent carries a W3C traceparent: version, trace id,
	// parent (span) id and flags, "00-<32 hex>-<16 hex>-<2 hex>".
	HeaderTraceparent = "traceparent"
	// HeaderTracestate carries vendors' trace state next to traceparent;
	// dartup passes it on as it came (within MaxTracestateLength).
	HeaderTracestate = "tracestate"
	// HeaderAmznTraceID is the X-Ray trace header AWS puts in HTTP events
	// (API Gateway, ALB): "Root=1-…;Parent=…;Sampled=0|1".
	HeaderAmznTraceID = "X-Amzn-Trace-Id"
)

// MaxTracestateLength bounds a tracestate that dartup passes on: W3C asks
// vendors to pass on at least 512 characters. A longer or malformed one is
// dropped whole.
const MaxTracestateLength = 512

// maxTracestateMembers is W3C's limit of list members in a tracestate.
const maxTracestateMembers = 32

// Trace flags (W3C): the caller may have recorded the trace (sampled), and
// the trace id's right-most 7 bytes are random (level 2). Other bits are
// not passed on.
const (
	TraceFlagSampled byte = 0x01
	TraceFlagRandom  byte = 0x02
	traceFlagsKept        = TraceFlagSampled | TraceFlagRandom
)

// traceparentLen is the length of a version 00 traceparent.
const traceparentLen = 55

// TraceContext is one hop of a trace: the trace id, the id of the span
// that sent the request (the parent of whatever the receiver does) and the
// flags. The zero value is not valid (IsValid).
type TraceContext struct {
	TraceID  [16]byte
	ParentID [8]byte
	Flags    byte
}

// IsValid reports whether neither id is all zeros (W3C: such ids are invalid).
func (t TraceContext) IsValid() bool {
	return t.TraceID != [16]byte{} && t.ParentID != [8]byte{}
}

// Sampled reports whether the sampled flag is set.
func (t TraceContext) Sampled() bool { return t.Flags&TraceFlagSampled != 0 }

// TraceIDString returns the trace id as 32 lower-case hex digits.
func (t TraceContext) TraceIDString() string { return hex.EncodeToString(t.TraceID[:]) }

// ParentIDString returns the parent id as 16 lower-case hex digits.
func (t TraceContext) ParentIDString() string { return hex.EncodeToString(t.ParentID[:]) }

// String returns t as a version 00 traceparent:
// "00-<trace id>-<parent id>-<flags>".
func (t TraceContext) String() string {
	var b [traceparentLen]byte
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], t.TraceID[:])
	b[35] = '-'
	hex.Encode(b[36:52], t.ParentID[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{t.Flags})
	return string(b[:])
}

// XRay returns t in the form of AWS X-Ray's trace header, which
// Lambda-Runtime-Trace-Id, _X_AMZN_TRACE_ID and X-Amzn-Trace-Id carry:
// "Root=1-<first 8 hex of the trace id>-<its other 24>;Parent=<parent
// id>;Sampled=<0|1>".
func (t TraceContext) XRay() string {
	var b [xrayLen]byte
	return string(t.AppendXRay(b[:0]))
}

// xrayLen is the length of TraceContext.XRay's form.
const xrayLen = len("Root=1-") + 8 + 1 + 24 + len(";Parent=") + 16 + len(";Sampled=") + 1

// AppendXRay appends t's X-Ray form (see XRay) to b.
func (t TraceContext) AppendXRay(b []byte) []byte {
	n := len(b)
	b = append(b, make([]byte, xrayLen)...)
	x := b[n:]
	i := copy(x, "Root=1-")
	hex.Encode(x[i:i+8], t.TraceID[:4])
	i += 8
	x[i] = '-'
	i++
	hex.Encode(x[i:i+24], t.TraceID[4:])
	i += 24
	i += copy(x[i:], ";Parent=")
	hex.Encode(x[i:i+16], t.ParentID[:])
	i += 16
	i += copy(x[i:], ";Sampled=")
	x[i] = '0'
	if t.Sampled() {
		x[i] = '1'
	}
	return b
}

// NewTrace starts a trace: a new trace id whose first 4 bytes are the
// time in Unix seconds (as X-Ray's, so that the id is a valid X-Ray trace
// id too) and whose other 12 are random, a random parent id, and no flags
// (nothing recorded it).
func NewTrace() TraceContext {
	var t TraceContext
	now := uint32(time.Now().Unix())
	t.TraceID[0], t.TraceID[1], t.TraceID[2], t.TraceID[3] = byte(now>>24), byte(now>>16), byte(now>>8), byte(now)
	putUint64(t.TraceID[4:12], rand.Uint64())
	putUint32(t.TraceID[12:16], rand.Uint32())
	t.ParentID = NewSpanID()
	return t
}

// Child returns the context that a hop passes on after t: the same trace
// and flags (sampled and random only), with parent id span.
func (t TraceContext) Child(span [8]byte) TraceContext {
	return TraceContext{TraceID: t.TraceID, ParentID: span, Flags: t.Flags & traceFlagsKept}
}

// NextHop is the context a hop that records no span passes on after in:
// in with a new span id when ok (in is the caller's valid traceparent),
// else a new trace.
func NextHop(in TraceContext, ok bool) TraceContext {
	if ok {
		return in.Child(NewSpanID())
	}
	return NewTrace()
}

// NewSpanID returns a random span id, never all zeros.
func NewSpanID() [8]byte {
	var id [8]byte
	for id == [8]byte{} {
		putUint64(id[:], rand.Uint64())
	}
	return id
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}

func putUint32(b []byte, v uint32) {
	_ = b[3]
	for i := range 4 {
		b[i] = byte(v >> (24 - 8*i))
	}
}

// ParseTraceparent reads a traceparent header value, strictly as W3C
// Trace Context says: lower-case hex only; version ff is invalid; version
// 00 is exactly "00-<32 hex>-<16 hex>-<2 hex>"; a later version is read by
// its version 00 prefix, which must then end the value or be followed by
// "-"; a trace id or parent id of all zeros is invalid. ok is false for
// anything else: the receiver then starts a new trace.
func ParseTraceparent(v string) (t TraceContext, ok bool) {
	if len(v) < traceparentLen || !isLowerHex(v[0:2]) || v[0:2] == "ff" {
		return t, false
	}
	if v[0:2] == "00" && len(v) != traceparentLen {
		return t, false
	}
	if len(v) > traceparentLen && v[traceparentLen] != '-' {
		return t, false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return t, false
	}
	if !decodeLowerHex(t.TraceID[:], v[3:35]) || !decodeLowerHex(t.ParentID[:], v[36:52]) {
		return TraceContext{}, false
	}
	var flags [1]byte
	if !decodeLowerHex(flags[:], v[53:55]) {
		return TraceContext{}, false
	}
	t.Flags = flags[0]
	if !t.IsValid() {
		return TraceContext{}, false
	}
	return t, true
}

// isLowerHex reports whether s is only 0-9 and a-f.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// decodeLowerHex decodes s (lower-case hex, 2*len(dst) digits) into dst.
func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) || !isLowerHex(s) {
		return false
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

// TraceFromValues reads the traceparent of a request from the values of
// its traceparent header: valid only when there is exactly one value and
// it parses (W3C: several traceparent headers are invalid).
func TraceFromValues(values []string) (TraceContext, bool) {
	if len(values) != 1 {
		return TraceContext{}, false
	}
	return ParseTraceparent(values[0])
}

// TraceFromNATS reads the traceparent of a NATS message's headers
// (HeaderTraceparent, or "Traceparent"); ok is false without a valid one.
func TraceFromNATS(h nats.Header) (TraceContext, bool) {
	if h == nil {
		return TraceContext{}, false
	}
	v, found := h[HeaderTraceparent]
	if !found {
		v = h["Traceparent"]
	}
	return TraceFromValues(v)
}

// CleanTracestate returns the tracestate to pass on from the values of a
// request's tracestate headers (several are one list, joined with ","):
// the list as it came when it is valid W3C tracestate of at most
// MaxTracestateLength bytes and 32 members with distinct keys; ok is
// false (drop it) otherwise, and when there is none.
func CleanTracestate(values []string) (string, bool) {
	if len(values) == 0 {
		return "", false
	}
	total := len(values) - 1
	for _, v := range values {
		total += len(v)
	}
	if total > MaxTracestateLength {
		return "", false
	}
	s := values[0]
	if len(values) > 1 {
		s = strings.Join(values, ",")
	}
	if !validTracestate(s) {
		return "", false
	}
	return s, true
}

// validTracestate checks a tracestate list: members separated by ","
// with optional spaces or tabs around them, empty members allowed, at most
// 32 non-empty ones, each key=value with a valid key and value, no key
// twice.
func validTracestate(s string) bool {
	var keys [maxTracestateMembers]string
	n := 0
	for m := range strings.SplitSeq(s, ",") {
		m = strings.Trim(m, " \t")
		if m == "" {
			continue
		}
		key, value, found := strings.Cut(m, "=")
		if !found || n == maxTracestateMembers || !validTracestateKey(key) || !validTracestateValue(value) {
			return false
		}
		for _, k := range keys[:n] {
			if k == key {
				return false
			}
		}
		keys[n] = key
		n++
	}
	return n > 0
}

// validTracestateKey: a simple key (lcalpha, then up to 255 of lcalpha,
// digits, "_-*/") or a multi-tenant key tenant@system (tenant: lcalpha or
// digit, then up to 240; system: lcalpha, then up to 13).
func validTracestateKey(k string) bool {
	tenant, system, multi := strings.Cut(k, "@")
	if !multi {
		return len(k) >= 1 && len(k) <= 256 && isLCAlpha(k[0]) && keyChars(k[1:])
	}
	return len(tenant) >= 1 && len(tenant) <= 241 && (isLCAlpha(tenant[0]) || isDigit(tenant[0])) && keyChars(tenant[1:]) &&
		len(system) >= 1 && len(system) <= 14 && isLCAlpha(system[0]) && keyChars(system[1:])
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }

func keyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '*' && c != '/' {
			return false
		}
	}
	return true
}

// validTracestateValue: 1 to 256 printable ASCII characters but "," and
// "=", spaces allowed except at the end.
func validTracestateValue(v string) bool {
	if len(v) == 0 || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}
