package otlpexport

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Bounds on one export.
const (
	// maxRequestBody refuses a batch that encodes larger (a span's
	// attribute values are not bounded by the SDK by default).
	maxRequestBody = 32 << 20
	// maxResponseBody is the most of a response that is read.
	maxResponseBody = 64 << 10
	// firstBackoff is the first wait before a retry; it doubles.
	firstBackoff = 5 * time.Millisecond
	// maxBackoff bounds one wait (a Retry-After may ask for longer).
	maxBackoff = 2 * time.Second
)

// errShutdown is what ExportSpans returns after Shutdown.
var errShutdown = errors.New("OTLP exporter is shut down")

// Exporter is dartup's own OTLP/HTTP span exporter: it POSTs each batch
// as an ExportTraceServiceRequest (protobuf) to one collector URL, with the
// headers, timeout, compression and TLS of the OTEL_EXPORTER_OTLP_*
// environment, and retries on 429, 502, 503, 504 and connection errors
// within the timeout. It implements sdktrace.SpanExporter.
type Exporter struct {
	url     string
	agent   string
	set     settings
	client  *http.Client
	backoff time.Duration

	stopCtx context.Context
	stop    context.CancelFunc
}

// newExporter returns an exporter to endpoint (a URL from ParseEndpoint)
// with the settings of the environment; version goes in the User-Agent.
func newExporter(endpoint, version string, s settings) *Exporter {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = s.tls
	tr.MaxIdleConnsPerHost = 2
	stopCtx, stop := context.WithCancel(context.Background())
	return &Exporter{
		url:     endpoint,
		agent:   "dartup/" + version + " (OTLP/HTTP exporter)",
		set:     s,
		client:  &http.Client{Transport: tr, CheckRedirect: noRedirects},
		backoff: firstBackoff,
		stopCtx: stopCtx,
		stop:    stop,
	}
}

// noRedirects keeps the collector's redirects from taking the headers
// (which may hold credentials) anywhere else.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// ExportSpans implements sdktrace.SpanExporter: it sends spans in one
// request, retried within the timeout.
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.stopCtx.Err() != nil {
		return errShutdown
	}
	if len(spans) == 0 {
		return nil
	}
	body, gz, err := e.body(spans)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, e.set.timeout)
	defer cancel()
	defer context.AfterFunc(e.stopCtx, cancel)()
	return e.sendRetrying(ctx, body, gz)
}

// body encodes spans, gzipped when the environment asks.
func (e *Exporter) body(spans []sdktrace.ReadOnlySpan) (body []byte, gz bool, err error) {
	raw := encodeRequest(nil, spans)
	if len(raw) > maxRequestBody {
		return nil, false, fmt.Errorf("OTLP export: %d spans encode to %d bytes, over %d: dropped (an attribute value is too large; set OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT)", len(spans), len(raw), maxRequestBody)
	}
	if !e.set.gzip {
		return raw, false, nil
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		return nil, false, err
	}
	if err := zw.Close(); err != nil {
		return nil, false, err
	}
	return b.Bytes(), true, nil
}

// sendRetrying posts body until it is taken, refused for good, or the
// time (ctx) runs out.
func (e *Exporter) sendRetrying(ctx context.Context, body []byte, gz bool) error {
	for attempt := 0; ; attempt++ {
		err := e.post(ctx, body, gz)
		var re *retryableError
		if err == nil || !errors.As(err, &re) {
			return err
		}
		wait := max(re.retryAfter, backoff(e.backoff, attempt, randFloat()))
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("OTLP export to %s gave up (a retry in %v would pass the %v timeout): %w", e.url, wait.Round(time.Millisecond), e.set.timeout, re.err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("OTLP export to %s: %w (last: %w)", e.url, ctx.Err(), re.err)
		case <-t.C:
		}
	}
}

// post sends body once; an error worth a retry is a *retryableError.
func (e *Exporter) post(ctx context.Context, body []byte, gz bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("OTLP export: %w", err)
	}
	for _, h := range e.set.headers {
		req.Header.Set(h[0], h[1])
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", e.agent)
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		if ctx.Err() == nil && retryableTransport(err) {
			return &retryableError{err: err}
		}
		return fmt.Errorf("OTLP export: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	return answer(e.url, resp, data, rerr, time.Now())
}

// answer judges a collector's response (its first maxResponseBody bytes
// in data, read with error rerr).
func answer(url string, resp *http.Response, data []byte, rerr error, now time.Time) error {
	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		if rerr != nil {
			return fmt.Errorf("OTLP export to %s: reading the answer: %w", url, rerr)
		}
		return partialSuccess(resp.Header.Get("Content-Type"), data)
	case retryableStatus(code):
		ra, _ := parseRetryAfter(resp.Header.Get("Retry-After"), now)
		return &retryableError{retryAfter: ra, err: fmt.Errorf("OTLP collector %s answered %s: %s", url, resp.Status, snippet(data))}
	default:
		return fmt.Errorf("OTLP collector %s refused the spans: %s: %s", url, resp.Status, snippet(data))
	}
}

// retryableError is a failure worth another attempt.
type retryableError struct {
	retryAfter time.Duration
	err        error
}

func (r *retryableError) Error() string { return r.err.Error() }
func (r *retryableError) Unwrap() error { return r.err }

// Shutdown implements sdktrace.SpanExporter: an export under way is
// cancelled and later ones fail at once.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.stop()
	e.client.CloseIdleConnections()
	return ctx.Err()
}
