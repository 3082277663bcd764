package otlpexport_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/otlpexport"
	"github.com/dartup/dartup/internal/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// oneSpan makes one ended span.
func oneSpan(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	_, s := tp.Tracer("t").Start(context.Background(), "one")
	s.End()
	return rec.Ended()
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func newExp(t *testing.T, url string, vars map[string]string) *otlpexport.Exporter {
	t.Helper()
	exp, err := otlpexport.NewExporterFromEnv(url, env(vars), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

func TestHeadersAndGzip(t *testing.T) {
	rc := startReceiver(t, nil)
	exp := newExp(t, rc.URL, map[string]string{
		"OTEL_EXPORTER_OTLP_HEADERS":        "Authorization=ignored",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "Authorization=Bearer%20s3cret, x-team = a%2Cb ,bad entry,=novalue,noequals",
		"OTEL_EXPORTER_OTLP_COMPRESSION":    "gzip",
	})
	if err := exp.ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatal(err)
	}
	bodies, heads := rc.requests()
	h := heads[0]
	if h.Get("Authorization") != "Bearer s3cret" || h.Get("X-Team") != "a,b" || h.Get("Content-Encoding") != "gzip" || h.Get("Content-Type") != "application/x-protobuf" {
		t.Errorf("headers: %v", h)
	}
	if len(h.Values("Bad entry")) != 0 || !strings.HasPrefix(h.Get("User-Agent"), "dartup/") {
		t.Errorf("headers: %v", h)
	}
	zr, err := gzip.NewReader(bytes.NewReader(bodies[0]))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := allSpans(decode(t, raw)); len(got) != 1 || got[0].Name != "one" {
		t.Errorf("spans: %v", got)
	}
}

func TestRetriesOn503ThenSucceeds(t *testing.T) {
	rc := startReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n < 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	if err := newExp(t, rc.URL, nil).ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatal(err)
	}
	if bodies, _ := rc.requests(); len(bodies) != 3 || !bytes.Equal(bodies[0], bodies[2]) {
		t.Fatalf("%d requests, want 3 with the same body", len(bodies))
	}
}

func TestDoesNotRetry400(t *testing.T) {
	rc := startReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		http.Error(w, "bad spans\r\n"+strings.Repeat("z", 100<<10), http.StatusBadRequest)
		return true
	})
	err := newExp(t, rc.URL, nil).ExportSpans(context.Background(), oneSpan(t))
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request") || !strings.Contains(err.Error(), `bad spans\r\nzzz`) || len(err.Error()) > 600 {
		t.Fatalf("err = %v", err)
	}
	if bodies, _ := rc.requests(); len(bodies) != 1 {
		t.Fatalf("%d requests, want 1", len(bodies))
	}
}

func TestRetryAfter(t *testing.T) {
	rc := startReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) bool {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	start := time.Now()
	if err := newExp(t, rc.URL, nil).ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("the retry came after %v, before the 1 s Retry-After", el)
	}
	// A Retry-After past the timeout: give up at once.
	rc2 := startReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	start = time.Now()
	err := newExp(t, rc2.URL, map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "5000"}).ExportSpans(context.Background(), oneSpan(t))
	if err == nil || !strings.Contains(err.Error(), "gave up") || time.Since(start) > 3*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
	if bodies, _ := rc2.requests(); len(bodies) != 1 {
		t.Fatalf("%d requests, want 1", len(bodies))
	}
}

func TestTimeoutAndShutdown(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	rc := startReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	exp := newExp(t, rc.URL, map[string]string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "300", "OTEL_EXPORTER_OTLP_TIMEOUT": "60000"})
	start := time.Now()
	err := exp.ExportSpans(context.Background(), oneSpan(t))
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v; want a timeout after 300 ms", err, time.Since(start))
	}
	// Shutdown cancels an export under way and fails later ones at once.
	exp2 := newExp(t, rc.URL, nil)
	done := make(chan error, 1)
	go func() { done <- exp2.ExportSpans(context.Background(), oneSpan(t)) }()
	testutil.WaitFor(t, 5*time.Second, "the export to reach the collector", func() bool { b, _ := rc.requests(); return len(b) >= 2 })
	if err := exp2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the export under way succeeded after Shutdown")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not cancel the export under way")
	}
	if err := exp2.ExportSpans(context.Background(), oneSpan(t)); err == nil || !strings.Contains(err.Error(), "shut down") {
		t.Fatalf("after Shutdown: %v", err)
	}
	// The caller's context is respected too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newExp(t, rc.URL, nil).ExportSpans(ctx, oneSpan(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("with a cancelled context: %v", err)
	}
}

func TestConnectionRefusedIsRetriedWithinTimeout(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	start := time.Now()
	err := newExp(t, url, map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "400"}).ExportSpans(context.Background(), oneSpan(t))
	if el := time.Since(start); err == nil || el < 100*time.Millisecond || el > 5*time.Second || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v after %v; want connection refused, retried up to 400 ms", err, el)
	}
}

func TestPartialSuccessIsAnError(t *testing.T) {
	rc := startReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 2, ErrorMessage: "too old"}})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
		return true
	})
	err := newExp(t, rc.URL, nil).ExportSpans(context.Background(), oneSpan(t))
	if err == nil || !strings.Contains(err.Error(), `rejected 2 spans: "too old"`) {
		t.Fatalf("err = %v", err)
	}
}

// tlsReceiver starts an HTTPS receiver with a certificate of pki's CA;
// with clientCA it asks for a client certificate of that CA.
func tlsReceiver(t *testing.T, pki *testutil.PKI, clientCA bool) *receiver {
	t.Helper()
	certFile, keyFile := pki.Issue(t, "collector", "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	rc.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the test
	if clientCA {
		pem, err := os.ReadFile(pki.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		rc.TLS.ClientCAs, rc.TLS.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	rc.StartTLS()
	t.Cleanup(rc.Close)
	return rc
}

func TestTLSAndMutualTLS(t *testing.T) {
	pki := testutil.NewPKI(t, "otlp-ca")
	rc := tlsReceiver(t, pki, false)
	if err := newExp(t, rc.URL, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": pki.CAFile}).ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	start := time.Now()
	err := newExp(t, rc.URL, nil).ExportSpans(context.Background(), oneSpan(t))
	if err == nil || !strings.Contains(err.Error(), "certificate") || time.Since(start) > 2*time.Second {
		t.Fatalf("without the CA: %v after %v (want a certificate error, not retried)", err, time.Since(start))
	}
	mrc := tlsReceiver(t, pki, true)
	certFile, keyFile := pki.Issue(t, "dartup-client")
	vars := map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": pki.CAFile,
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certFile, "OTEL_EXPORTER_OTLP_CLIENT_KEY": keyFile}
	if err := newExp(t, mrc.URL, vars).ExportSpans(context.Background(), oneSpan(t)); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if b, _ := mrc.requests(); len(b) != 1 {
		t.Fatalf("%d requests", len(b))
	}
	start = time.Now()
	if err := newExp(t, mrc.URL, map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": pki.CAFile}).ExportSpans(context.Background(), oneSpan(t)); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("without a client certificate: %v after %v (want an error, not retried)", err, time.Since(start))
	}
}

func TestBadEnvironmentIsAnError(t *testing.T) {
	pki := testutil.NewPKI(t, "otlp-ca")
	certFile, _ := pki.Issue(t, "c")
	tests := []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"}, "OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": certFile + ".nope"}, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE="},
		{map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/hostname"}, "no PEM certificate"},
		{map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certFile}, "go together"},
		{map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": certFile, "OTEL_EXPORTER_OTLP_CLIENT_KEY": pki.CAKeyFile}, "not a certificate and its key"},
		{map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "X-Evil=a%0D%0AHost:%20x"}, "control character"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "milliseconds"},
		{map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "gzip or none"},
	}
	for _, tc := range tests {
		_, err := otlpexport.NewExporterFromEnv("http://127.0.0.1:4318/v1/traces", env(tc.vars), time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.vars, err, tc.want)
		}
	}
}
