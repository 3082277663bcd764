package clientsdk

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

const (
	w3cTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	w3cParent = "00f067aa0ba902b7"
	w3cValid  = "00-" + w3cTrace + "-" + w3cParent + "-01"
)

func TestParseTraceparent(t *testing.T) {
	zeroTrace := strings.Repeat("0", 32)
	zeroParent := strings.Repeat("0", 16)
	tests := []struct {
		name, in string
		ok       bool
		flags    byte
	}{
		{"W3C example, sampled", w3cValid, true, 1},
		{"not sampled", "00-" + w3cTrace + "-" + w3cParent + "-00", true, 0},
		{"unknown flags kept on parse", "00-" + w3cTrace + "-" + w3cParent + "-ff", true, 0xff},
		{"future version, exact length", "cc-" + w3cTrace + "-" + w3cParent + "-01", true, 1},
		{"future version, more fields", "cc-" + w3cTrace + "-" + w3cParent + "-01-what-the-future-holds", true, 1},
		{"future version, no dash after flags", "cc-" + w3cTrace + "-" + w3cParent + "-01x", false, 0},
		{"version ff", "ff-" + w3cTrace + "-" + w3cParent + "-01", false, 0},
		{"version 00 with more", w3cValid + "-extra", false, 0},
		{"upper-case trace id", "00-" + strings.ToUpper(w3cTrace) + "-" + w3cParent + "-01", false, 0},
		{"upper-case version", "0A-" + w3cTrace + "-" + w3cParent + "-01", false, 0},
		{"upper-case flags", "00-" + w3cTrace + "-" + w3cParent + "-0A", false, 0},
		{"zero trace id", "00-" + zeroTrace + "-" + w3cParent + "-01", false, 0},
		{"zero parent id", "00-" + w3cTrace + "-" + zeroParent + "-01", false, 0},
		{"short trace id", "00-" + w3cTrace[1:] + "-" + w3cParent + "-01", false, 0},
		{"short", w3cValid[:54], false, 0},
		{"empty", "", false, 0},
		{"non-hex", "00-" + w3cTrace[:31] + "g-" + w3cParent + "-01", false, 0},
		{"wrong separator", "00_" + w3cTrace + "-" + w3cParent + "-01", false, 0},
		{"spaces inside", "00- " + w3cTrace[1:] + "-" + w3cParent + "-01", false, 0},
		{"leading space", " " + w3cValid[:54], false, 0},
		{"two joined", w3cValid + "," + w3cValid, false, 0},
		{"x-ray form", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseTraceparent(tc.in)
			if ok != tc.ok {
				t.Fatalf("ParseTraceparent(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if !ok {
				if got != (TraceContext{}) {
					t.Fatalf("invalid input returned %+v", got)
				}
				return
			}
			if got.TraceIDString() != w3cTrace || got.ParentIDString() != w3cParent || got.Flags != tc.flags {
				t.Fatalf("ParseTraceparent(%q) = %s %s %02x", tc.in, got.TraceIDString(), got.ParentIDString(), got.Flags)
			}
		})
	}
}

// Formatting always writes version 00; a parsed version 00 value comes back
// as it was; Child keeps the trace and only the sampled and random flags.
func TestTraceparentFormat(t *testing.T) {
	tc, _ := ParseTraceparent(w3cValid)
	if tc.String() != w3cValid {
		t.Fatalf("String() = %q, want %q", tc.String(), w3cValid)
	}
	future, _ := ParseTraceparent("cc-" + w3cTrace + "-" + w3cParent + "-01-more")
	if future.String() != w3cValid {
		t.Fatalf("a future version is passed on as version 00: %q", future.String())
	}
	all, _ := ParseTraceparent("00-" + w3cTrace + "-" + w3cParent + "-ff")
	span := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	child := all.Child(span)
	if got := child.String(); got != "00-"+w3cTrace+"-0102030405060708-03" {
		t.Fatalf("Child = %q: same trace, the new span as parent, flags 03", got)
	}
}

func TestXRay(t *testing.T) {
	tests := []struct{ in, want string }{
		{w3cValid, "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"},
		{"00-" + w3cTrace + "-" + w3cParent + "-00", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=0"},
		{"00-" + w3cTrace + "-" + w3cParent + "-02", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=0"},
		{"00-" + w3cTrace + "-" + w3cParent + "-03", "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"},
	}
	for _, tc := range tests {
		p, ok := ParseTraceparent(tc.in)
		if !ok {
			t.Fatalf("ParseTraceparent(%q) failed", tc.in)
		}
		if got := p.XRay(); got != tc.want {
			t.Errorf("XRay(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A new trace is valid, unsampled, different each time, and its trace id
// starts with the time in seconds (a valid X-Ray root).
func TestNewTrace(t *testing.T) {
	before := time.Now().Unix()
	a, b := NewTrace(), NewTrace()
	after := time.Now().Unix()
	if !a.IsValid() || a.Sampled() || a.TraceID == b.TraceID || a.ParentID == b.ParentID {
		t.Fatalf("NewTrace: %s, %s", a, b)
	}
	if _, ok := ParseTraceparent(a.String()); !ok {
		t.Fatalf("a new trace does not parse: %s", a)
	}
	secs := int64(a.TraceID[0])<<24 | int64(a.TraceID[1])<<16 | int64(a.TraceID[2])<<8 | int64(a.TraceID[3])
	if secs < before || secs > after {
		t.Fatalf("trace id %s does not start with the time (%d, want %d..%d)", a.TraceIDString(), secs, before, after)
	}
	xray := regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$`)
	if !xray.MatchString(a.XRay()) {
		t.Fatalf("XRay of a new trace: %q", a.XRay())
	}
}

func TestTraceFromHeaders(t *testing.T) {
	if _, ok := TraceFromValues([]string{w3cValid, w3cValid}); ok {
		t.Fatal("two traceparent headers must be invalid")
	}
	if _, ok := TraceFromValues(nil); ok {
		t.Fatal("no traceparent is not a trace")
	}
	for _, key := range []string{"traceparent", "Traceparent"} {
		if tc, ok := TraceFromNATS(nats.Header{key: {w3cValid}}); !ok || tc.String() != w3cValid {
			t.Fatalf("NATS header %q: %v %v", key, tc, ok)
		}
	}
	if _, ok := TraceFromNATS(nats.Header{"TRACEPARENT": {w3cValid}}); ok {
		t.Fatal("NATS headers are case-sensitive: only traceparent and Traceparent are read")
	}
	if _, ok := TraceFromNATS(nil); ok {
		t.Fatal("nil header")
	}
}

func TestCleanTracestate(t *testing.T) {
	long := "a=" + strings.Repeat("x", 257)
	tests := []struct {
		name string
		in   []string
		want string
		ok   bool
	}{
		{"one member", []string{"congo=t61rcWkgMzE"}, "congo=t61rcWkgMzE", true},
		{"two members kept as given", []string{"rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"}, "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", true},
		{"two headers joined", []string{"rojo=1", "congo=2"}, "rojo=1,congo=2", true},
		{"multi-tenant key", []string{"fw529a3039@dt=abc"}, "fw529a3039@dt=abc", true},
		{"empty members allowed", []string{"a=1,,b=2"}, "a=1,,b=2", true},
		{"value with inner space", []string{"a=x y"}, "a=x y", true},
		{"none", nil, "", false},
		{"only commas", []string{" , "}, "", false},
		{"upper-case key", []string{"Congo=1"}, "", false},
		{"key starting with a digit", []string{"1a=1"}, "", false},
		{"no value", []string{"a="}, "", false},
		{"no equals", []string{"a"}, "", false},
		{"equals in value", []string{"a=b=c"}, "", false},
		{"control character", []string{"a=b\x01"}, "", false},
		{"non-ASCII", []string{"a=é"}, "", false},
		{"duplicate key", []string{"a=1,a=2"}, "", false},
		{"value too long", []string{long}, "", false},
		{"over 512 bytes", []string{strings.Repeat("k=v,", 128) + "z=1"}, "", false},
		{"33 members", []string{members(33)}, "", false},
		{"32 members", []string{members(32)}, members(32), true},
		{"system id too long", []string{"t@abcdefghijklmno=1"}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := CleanTracestate(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("CleanTracestate(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// members returns n distinct tracestate members "kI=1".
func members(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, "k"+string(rune('a'+i/26))+string(rune('a'+i%26))+"=1")
	}
	return strings.Join(parts, ",")
}

// Parsing does not allocate; formatting allocates only the string.
func TestTraceparentAllocs(t *testing.T) {
	var tc TraceContext
	if n := testing.AllocsPerRun(100, func() { tc, _ = ParseTraceparent(w3cValid) }); n != 0 {
		t.Errorf("ParseTraceparent allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = tc.Child(NewSpanID()).String() }); n > 1 {
		t.Errorf("Child+String allocates %v times", n)
	}
}
