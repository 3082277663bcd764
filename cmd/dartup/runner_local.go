//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/version"
	"github.com/dartup/dartup/lambdas"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// nodeAgent is a runner with what it owns: its connection, the reply-only
// one it answers callers on, and its lambda host.
type nodeAgent struct {
	r       *runner.Runner
	host    *lambdas.Manager
	nc, rnc *nats.Conn
}

// nodeConf is how a node is wired: its connections, its id, the server's
// extra reply prefixes, and the runner's options.
type nodeConf struct {
	nc, rnc  *nats.Conn
	id       string
	prefixes []string
	logger   *slog.Logger
	opts     []runner.Option
	// logApps puts the apps' output lines in the node's log too (--log-apps).
	logApps bool
	// tracing records lambda invocation spans (--otlp-endpoint; nil: none).
	tracing trace.TracerProvider
	// fallback is the leaf-node connection of direct mode (nil: none).
	fallback *nats.Conn
}

// appLogLevel is the level of apps' output lines in the node's log.
func (c nodeConf) appLogLevel() slog.Level {
	if c.logApps {
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// startLocalRunner starts the in-process runner of `dartup serve`; its node
// id is the server's name, so that it finds its own claims after a restart.
func startLocalRunner(ctx context.Context, b *broker.Broker, logger *slog.Logger, logApps bool, tracing trace.TracerProvider, extra ...runner.Option) (*nodeAgent, error) {
	nc, err := b.Connect("dartup-runner")
	if err != nil {
		return nil, err
	}
	rnc, err := b.Connect(clientsdk.ReplyConnName + " runner")
	if err != nil {
		nc.Close()
		return nil, err
	}
	return startNode(ctx, nodeConf{nc: nc, rnc: rnc, id: clientsdk.TokenFrom(b.ServerName(), "node"), prefixes: b.ReplyPrefixes(),
		logger: logger, logApps: logApps, tracing: tracing, fallback: b.FallbackConn(), opts: append([]runner.Option{
			runner.WithDataDir(b.DataDir()),
			runner.WithNATSURL(b.WorkerURL()),
		}, extra...)})
}

// startNode starts a runner with its lambda host; it closes the connections
// when either cannot start.
func startNode(ctx context.Context, c nodeConf) (_ *nodeAgent, err error) {
	n := &nodeAgent{nc: c.nc, rnc: c.rnc}
	defer func() {
		if err != nil {
			if n.host != nil {
				_ = n.host.Close(ctx)
			}
			c.nc.Close()
			c.rnc.Close()
		}
	}()
	if n.host, err = newLambdaHost(ctx, c); err != nil {
		return nil, err
	}
	opts := append([]runner.Option{runner.WithNodeID(c.id), runner.WithLogger(c.logger), runner.WithVersion(version.Version),
		runner.WithReplyConn(c.rnc, c.prefixes...), runner.WithLambdaHost(n.host), runner.WithAppLogLevel(c.appLogLevel())}, c.opts...)
	if n.r, err = runner.New(ctx, c.nc, opts...); err != nil {
		return nil, err
	}
	if err := n.r.Start(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// newLambdaHost makes the node's lambda host: it answers callers on the
// reply-only connection and reports to the status bucket.
func newLambdaHost(ctx context.Context, c nodeConf) (*lambdas.Manager, error) {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, err
	}
	status, err := js.KeyValue(ctx, clientsdk.StatusBucket)
	if err != nil {
		return nil, fmt.Errorf("open %s (is this a dartup server?): %w", clientsdk.StatusBucket, err)
	}
	opts := []lambdas.Option{lambdas.WithLogger(c.logger), lambdas.WithNodeID(c.id), lambdas.WithStatusBucket(status),
		lambdas.WithReplyConn(c.rnc, c.prefixes...), lambdas.WithAppLogLevel(c.appLogLevel()), lambdas.WithTracerProvider(c.tracing)}
	if c.fallback != nil {
		opts = append(opts, lambdas.WithFallbackConn(c.fallback))
	}
	host, err := lambdas.New(c.nc, opts...)
	if err != nil {
		return nil, fmt.Errorf("start lambda host: %w", err)
	}
	return host, nil
}

// stop stops the runner (its workers, its claims), then the lambda host, then
// drains the connections.
func (n *nodeAgent) stop(ctx context.Context) error {
	err := errors.Join(n.r.Stop(ctx), n.host.Close(ctx))
	for _, nc := range []*nats.Conn{n.rnc, n.nc} {
		if d := nc.Drain(); d != nil && !errors.Is(d, nats.ErrConnectionClosed) {
			err = errors.Join(err, d)
		}
	}
	return err
}

// persistentNodeID returns the node id kept in DIR/node-id, creating one from
// the host name and a random suffix the first time.
func persistentNodeID(dir string) (string, error) {
	p := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	}
	h, _ := os.Hostname()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	base := clientsdk.TokenFrom(h, "node")
	if len(base) > 48 { // room for the suffix
		base = base[:48]
	}
	id := base + "-" + hex.EncodeToString(suffix)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return id, os.WriteFile(p, []byte(id+"\n"), 0o600)
}
