package otlpexport

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseHeaders(t *testing.T) {
	tests := []struct {
		in, want, skipped, err string
	}{
		{"", "", "", ""},
		{"a=1", "a=1", "", ""},
		{" Authorization = Bearer%20x%3D%3D ,b=2", "Authorization=Bearer x==|b=2", "", ""},
		{"a=1,,b=", "a=1|b=", "", ""},
		{"noequals,c=3", "c=3", "entry 1", ""},
		{"Authorization: Bearer secret,c=3", "c=3", "entry 1", ""},
		{"Authorization: Bearer secret==", "", "entry 1", ""},
		{"bad key=1,=2,ok=3", "ok=3", "entry 1|entry 2", ""},
		{"a=%zz,b=2", "b=2", "entry 1", ""},
		{"a=x%0Ay", "", "", "control character"},
		{"a=x%0D", "", "", "control character"},
		{"a=x%00y", "", "", "control character"},
		{"a=tab%09ok", "a=tab\tok", "", ""},
		{strings.Repeat("k=v,", 65), "", "", "over 64 headers"},
		{"a=" + strings.Repeat("v", maxHeadersLen), "", "", "bytes long"},
	}
	for _, tc := range tests {
		h, skipped, err := parseHeaders("OTEL_EXPORTER_OTLP_HEADERS", tc.in)
		var got []string
		for _, kv := range h {
			got = append(got, kv[0]+"="+kv[1])
		}
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseHeaders(%.30q) err = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("parseHeaders(%.30q) err = %v", tc.in, err)
		case tc.err == "" && strings.Join(got, "|") != tc.want:
			t.Errorf("parseHeaders(%q) = %q, want %q", tc.in, strings.Join(got, "|"), tc.want)
		case tc.err == "" && !sameEntries(skipped, tc.skipped):
			t.Errorf("parseHeaders(%q) skipped %q, want %q", tc.in, skipped, tc.skipped)
		}
	}
}

func sameEntries(skipped []string, want string) bool {
	var w []string
	if want != "" {
		w = strings.Split(want, "|")
	}
	if len(skipped) != len(w) {
		return false
	}
	for i := range w {
		if !strings.HasPrefix(skipped[i], w[i]+":") || strings.Contains(skipped[i], "secret") {
			return false
		}
	}
	return true
}

func TestTraceVariablesWin(t *testing.T) {
	vars := map[string]string{
		"OTEL_EXPORTER_OTLP_TIMEOUT": "1000", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500",
		"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none",
		"OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=2",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://elsewhere:1",
	}
	s, err := readSettings(func(k string) string { return vars[k] })
	if err != nil || s.timeout != 2500*time.Millisecond || s.gzip || fmt.Sprint(s.headers) != "[[b 2]]" || s.tls != nil {
		t.Fatalf("settings %+v, %v", s, err)
	}
	s, err = readSettings(func(string) string { return "" })
	if err != nil || s.timeout != DefaultTimeout || s.gzip || s.headers != nil {
		t.Fatalf("defaults %+v, %v", s, err)
	}
}

func TestParseTimeoutAndCompression(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultTimeout, "1": time.Millisecond, " 30000 ": 30 * time.Second, "600000": 10 * time.Minute,
		"0": -1, "-5": -1, "600001": -1, "1e3": -1, "10s": -1} {
		got, err := parseTimeout("T", in)
		if (want < 0) != (err != nil) || want >= 0 && got != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]int{"": 0, "none": 0, "gzip": 1, "GZIP": 1, "zstd": -1, "gzip,none": -1} {
		got, err := parseCompression("C", in)
		if (want < 0) != (err != nil) || want >= 0 && got != (want == 1) {
			t.Errorf("parseCompression(%q) = %v, %v", in, got, err)
		}
	}
}

func TestNewReadsTheEnvironment(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "Authorization: Bearer secret,ok=1")
	var logs strings.Builder
	tp, err := New(context.Background(), Config{Endpoint: "http://127.0.0.1:1/v1/traces", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_ = tp.Shutdown(context.Background())
	if got := logs.String(); !strings.Contains(got, "OTEL_EXPORTER_OTLP_TRACES_HEADERS: an entry") || !strings.Contains(got, "entry 1: no '='") || strings.Contains(got, "secret") {
		t.Errorf("logs: %s", got)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/key.pem")
	t.Setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/nonexistent/cert.pem")
	if _, err := New(context.Background(), Config{Endpoint: "http://127.0.0.1:1/v1/traces"}); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=/nonexistent/cert.pem") {
		t.Errorf("New with a missing certificate: %v", err)
	}
}
