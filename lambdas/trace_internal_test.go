package lambdas

import "testing"

func TestResultOf(t *testing.T) {
	for code, want := range map[int]string{200: "ok", 500: "function_error", 429: "throttled", 504: "timeout",
		413: "too_large", 503: "unavailable", 502: "runtime_error", 507: "runtime_error"} {
		if got := resultOf(code); got != want {
			t.Errorf("resultOf(%d) = %q, want %q", code, got, want)
		}
	}
}
