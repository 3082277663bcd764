package otlpexport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0, 2500 * time.Microsecond},
		{0, 1, 5 * time.Millisecond},
		{1, 1, 10 * time.Millisecond},
		{3, 0.5, 30 * time.Millisecond},
		{20, 1, maxBackoff},
		{1000, 0, maxBackoff / 2},
	}
	for _, tc := range tests {
		if got := backoff(5*time.Millisecond, tc.attempt, tc.r); got != tc.want {
			t.Errorf("backoff(attempt %d, %v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"99999999999", 24 * time.Hour, true},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRetryableStatusAndTransport(t *testing.T) {
	for code, want := range map[int]bool{429: true, 502: true, 503: true, 504: true, 500: false, 400: false, 401: false, 404: false, 413: false, 200: false} {
		if retryableStatus(code) != want {
			t.Errorf("retryableStatus(%d) = %v", code, !want)
		}
	}
	if retryableTransport(context.Canceled) || retryableTransport(fmt.Errorf("x: %w", context.DeadlineExceeded)) || !retryableTransport(errors.New("connection reset by peer")) {
		t.Error("retryableTransport")
	}
}

func TestSnippet(t *testing.T) {
	long := strings.Repeat("é", 300)
	for in, want := range map[string]string{"": "(empty answer)", "  \n": "(empty answer)", "no\r\nway": `"no\r\nway"`} {
		if got := snippet([]byte(in)); got != want {
			t.Errorf("snippet(%q) = %q, want %q", in, got, want)
		}
	}
	if got := snippet([]byte(long)); len(got) > maxSnippet+8 || !strings.HasSuffix(got, `…"`) || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("snippet(long) = %q", got)
	}
}

func TestPartialSuccess(t *testing.T) {
	ps := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3)
	ps = protowire.AppendString(protowire.AppendTag(ps, 2, protowire.BytesType), "too\nold")
	resp := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), ps)
	tests := []struct {
		ct   string
		data []byte
		want string
	}{
		{"application/x-protobuf", resp, `rejected 3 spans: "too\nold"`},
		{"application/json", resp, ""},
		{"application/x-protobuf", nil, ""},
		{"application/x-protobuf", protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), nil), ""},
		{"application/x-protobuf", []byte{0xff, 0xff}, ""},
		{"application/x-protobuf", resp[:len(resp)-2], ""},
	}
	for _, tc := range tests {
		err := partialSuccess(tc.ct, tc.data)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("partialSuccess(%s, %x) = %v, want %q", tc.ct, tc.data, err, tc.want)
		}
	}
}

func TestCodeMappings(t *testing.T) {
	for c, want := range map[codes.Code]uint64{codes.Unset: 0, codes.Ok: 1, codes.Error: 2, codes.Code(9): 0} {
		if got := statusCode(c); got != want {
			t.Errorf("statusCode(%v) = %d, want %d", c, got, want)
		}
	}
	for k, want := range map[trace.SpanKind]uint64{trace.SpanKindUnspecified: 0, trace.SpanKindInternal: 1, trace.SpanKindServer: 2,
		trace.SpanKindClient: 3, trace.SpanKindProducer: 4, trace.SpanKindConsumer: 5, trace.SpanKind(42): 0} {
		if got := spanKind(k); got != want {
			t.Errorf("spanKind(%v) = %d, want %d", k, got, want)
		}
	}
	if unixNano(-5) != 0 || clampUint32(-1) != 0 || clampUint32(1<<40) != 1<<32-1 {
		t.Error("unixNano / clampUint32 bounds")
	}
}
