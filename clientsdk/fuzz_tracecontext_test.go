package clientsdk

import (
	"strings"
	"testing"
)

// FuzzTraceContext feeds arbitrary traceparent and tracestate values to
// the parsers: they never panic, a traceparent they take is valid and reads
// back the same once formatted, and a tracestate they keep is bounded and
// holds no bytes a header may not carry.
func FuzzTraceContext(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "a=b")
	f.Add("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "x@y=z")
	f.Fuzz(func(t *testing.T, parent, state string) {
		tc, ok := ParseTraceparent(parent)
		if ok {
			if !tc.IsValid() {
				t.Fatalf("ParseTraceparent(%q) took an invalid context", parent)
			}
			again, ok2 := ParseTraceparent(tc.String())
			if !ok2 || again != tc {
				t.Fatalf("%q formats as %q, which reads back as %+v, %v", parent, tc.String(), again, ok2)
			}
			if x := tc.XRay(); !strings.HasPrefix(x, "Root=1-") || strings.ContainsAny(x, "\r\n ") {
				t.Fatalf("X-Ray form %q", x)
			}
		}
		if s, ok := CleanTracestate([]string{state}); ok {
			if len(s) > 512 || strings.ContainsAny(s, "\r\n\x00") {
				t.Fatalf("tracestate %q kept as %q", state, s)
			}
		}
	})
}
