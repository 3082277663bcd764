//go:build linux

package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/loglimit"
	"github.com/dartup/dartup/internal/otlpexport"
	"github.com/dartup/dartup/internal/version"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// tracingFlags is --otlp-endpoint (serve and runner).
type tracingFlags struct {
	endpoint string
}

func (f *tracingFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.endpoint, "otlp-endpoint", "", "export gateway and lambda invocation spans to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318 (default: no export; trace headers are passed on all the same)")
}

// check validates --otlp-endpoint (a usage error when it is wrong) and
// returns the URL to export to, "" when unset.
func (f *tracingFlags) check() (string, error) {
	if f.endpoint == "" {
		return "", nil
	}
	u, err := otlpexport.ParseEndpoint(f.endpoint)
	if err != nil {
		return "", usageErr(err)
	}
	return u, nil
}

// tracing is the OpenTelemetry SDK while --otlp-endpoint is set: its
// provider, for the gateway and the lambda host, and its shutdown.
type tracing struct {
	tp interface {
		trace.TracerProvider
		Shutdown(context.Context) error
	}
}

// provider returns the tracer provider, nil without --otlp-endpoint.
func (t *tracing) provider() trace.TracerProvider {
	if t == nil || t.tp == nil {
		return nil
	}
	return t.tp
}

// shutdown flushes the spans still queued and stops the exporter.
func (t *tracing) shutdown(ctx context.Context) error {
	if t == nil || t.tp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return t.tp.Shutdown(ctx)
}

// startTracing starts the SDK for endpoint (a checked URL; "" starts
// nothing). instance names this server or node in the spans' resource.
// Export failures are logged at most once a minute.
func startTracing(ctx context.Context, endpoint, instance string, logger *slog.Logger) (*tracing, error) {
	if endpoint == "" {
		return &tracing{}, nil
	}
	if instance == "" {
		h, _ := os.Hostname()
		instance = clientsdk.TokenFrom(h, "dartup")
	}
	tp, err := otlpexport.New(ctx, otlpexport.Config{Endpoint: endpoint, InstanceID: instance, Version: version.Version, Logger: logger})
	if err != nil {
		return nil, err
	}
	var every loglimit.Every
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if every.Allow(time.Now(), time.Minute) {
			logger.Warn("OpenTelemetry: spans not exported (logged at most once a minute)", "endpoint", endpoint, "err", err)
		}
	}))
	logger.Info("exporting spans over OTLP/HTTP", "endpoint", endpoint)
	return &tracing{tp: tp}, nil
}
