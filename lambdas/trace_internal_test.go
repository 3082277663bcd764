package lambdas

import (
	"testing"
	"unicode/utf8"
)

func TestResultOf(t *testing.T) {
	for code, want := range map[int]string{200: "ok", 500: "function_error", 429: "throttled", 504: "timeout",
		413: "too_large", 503: "unavailable", 502: "runtime_error", 507: "runtime_error"} {
		if got := resultOf(code); got != want {
			t.Errorf("resultOf(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestSpanText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"Unhandled", 128, "Unhandled"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"},              // é is 2 bytes: not cut in half
		{"a\xffb", 128, "a\uFFFDb"}, // invalid UTF-8 replaced
		{"ééé", 5, "éé"},
	} {
		if got := spanText(tc.in, tc.max); got != tc.want || !utf8.ValidString(got) {
			t.Errorf("spanText(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
