// Package otlpexport builds the OpenTelemetry SDK's tracer provider that
// `dartup serve --otlp-endpoint` and `dartup runner --otlp-endpoint` hand
// to the gateway and the lambda host: spans are batched and exported over
// OTLP/HTTP (protobuf) to one collector by dartup's own exporter
// (Exporter: the SDK's otlptracehttp would link grpc and the generated
// OTLP types into every binary). Nothing here runs unless the flag is set;
// see docs/tracing.md.
package otlpexport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracesPath is what ParseEndpoint adds to an endpoint URL without a path
// (the OTLP/HTTP default for traces).
const TracesPath = "/v1/traces"

// maxEndpointLength bounds an endpoint URL.
const maxEndpointLength = 2048

// ParseEndpoint checks an --otlp-endpoint value and returns the URL spans
// are sent to: an http or https URL with a host, without user name,
// password, query or fragment (credentials go in the standard
// OTEL_EXPORTER_OTLP_HEADERS environment variable, never on a command
// line), with a port from 1 to 65535 if it has one; a URL without a path
// (or "/") gets TracesPath, one with a path is used as it is.
func ParseEndpoint(s string) (string, error) {
	const example = " (e.g. http://127.0.0.1:4318)"
	if len(s) > maxEndpointLength {
		return "", fmt.Errorf("--otlp-endpoint is %d bytes long, over %d", len(s), maxEndpointLength)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("--otlp-endpoint %q is not a URL (%w): give the http:// or https:// URL of an OTLP/HTTP collector%s", s, err, example)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("--otlp-endpoint %q must be an http:// or https:// URL of an OTLP/HTTP collector%s", s, example)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("--otlp-endpoint %q has no host%s", s, example)
	case u.User != nil:
		return "", fmt.Errorf("--otlp-endpoint must not hold a user name or password (command lines show in ps): set OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=…\" instead")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("--otlp-endpoint %q must not have a query or fragment%s", s, example)
	}
	if port := u.Port(); port == "" && strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("--otlp-endpoint %q has an empty port%s", s, example)
	} else if n, err := strconv.Atoi(port); port != "" && (err != nil || n < 1 || n > 65535) {
		return "", fmt.Errorf("--otlp-endpoint %q: port %s is not from 1 to 65535%s", s, port, example)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = TracesPath
	}
	return u.String(), nil
}

// Config is what New needs.
type Config struct {
	// Endpoint is a URL returned by ParseEndpoint.
	Endpoint string
	// InstanceID names this server or node (service.instance.id).
	InstanceID string
	// Version is dartup's version (service.version).
	Version string
	// BatchTimeout is the most a span waits before it is sent (0: the
	// SDK's default, 5 s, or OTEL_BSP_SCHEDULE_DELAY).
	BatchTimeout time.Duration
	// Logger gets the warnings about the environment (nil: slog.Default).
	Logger *slog.Logger
}

// New returns a tracer provider that batches spans (a bounded queue:
// spans over it are dropped, never held in memory) and exports them to
// cfg.Endpoint with dartup's own OTLP/HTTP exporter (Exporter), set up
// from the OTEL_EXPORTER_OTLP_* environment as the SDK's would be. Sampling follows the caller's sampled flag, and samples
// every trace that starts here, unless OTEL_TRACES_SAMPLER says otherwise.
// The resource is service.name "dartup" with the instance and version,
// which OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES may override. The
// caller must call Shutdown (it flushes what is queued).
func New(ctx context.Context, cfg Config) (*sdktrace.TracerProvider, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("otlpexport: no endpoint")
	}
	set, err := readSettings(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	for _, s := range set.skipped {
		logger.Warn(set.headersVar+": an entry is not a header (want key=value,key2=value2, values URL-encoded): skipped", "entry", s)
	}
	exp := newExporter(cfg.Endpoint, cfg.Version, set)
	attrs := []attribute.KeyValue{attribute.String("service.name", "dartup")}
	if cfg.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.InstanceID))
	}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && res == nil {
		return nil, fmt.Errorf("OTLP resource: %w", err)
	}
	var bopts []sdktrace.BatchSpanProcessorOption
	if cfg.BatchTimeout > 0 {
		bopts = append(bopts, sdktrace.WithBatchTimeout(cfg.BatchTimeout))
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, bopts...), sdktrace.WithResource(res), sdktrace.WithIDGenerator(xrayIDs{})), nil
}

// xrayIDs makes the SDK's ids as dartup makes its own: a new trace id
// starts with the time in Unix seconds (a valid X-Ray root, as traces
// started without the SDK), span ids are random.
type xrayIDs struct{}

// NewIDs implements sdktrace.IDGenerator.
func (xrayIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	tc := clientsdk.NewTrace()
	return tc.TraceID, tc.ParentID
}

// NewSpanID implements sdktrace.IDGenerator.
func (xrayIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	return clientsdk.NewSpanID()
}
