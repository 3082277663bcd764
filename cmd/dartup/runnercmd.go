//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/version"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

type runnerFlags struct {
	conn         connFlags
	data         string
	name         string
	labels       []string
	advertise    string
	maxInstances int
	aotRuntime   string
	heartbeat    time.Duration
	nodeTimeout  time.Duration
	verbose      bool
	logApps      bool
	logFormat    string
	// replyPrefixes must match the server's --reply-prefix.
	replyPrefixes []string
	isolation     isolationFlags
	tracing       tracingFlags
}

func newRunnerCmd() *cobra.Command {
	f := &runnerFlags{}
	cmd := &cobra.Command{
		Use:   "runner",
		Short: "Run a runner-only node that joins an existing dartup server",
		Long: `Run a node agent without an embedded server: it connects to a dartup server
(or any NATS server where dartup's buckets exist), registers itself and runs
its share of the daemons and lambdas.`,
		Example: `  dartup runner --server nats://10.0.0.1:4222 --user node --label zone=a
  dartup runner --server nats://a:4222,nats://b:4222 --max-instances 20
  dartup runner --server nats://10.0.0.1:4222 --otlp-endpoint https://otel.example:4318`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRunner(cmd, f) },
	}
	f.conn.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&f.data, "data", envOr("DARTUP_RUNNER_DATA", ".dartup-runner"), "local directory for the artifact cache and node id (env DARTUP_RUNNER_DATA)")
	fs.StringVar(&f.name, "name", "", "node id (default: host name plus a random suffix, kept in --data)")
	fs.StringArrayVar(&f.labels, "label", nil, "node label k=v, matched by push --constraint (repeatable)")
	fs.StringVar(&f.advertise, "advertise", "", "host or IP at which the servers' HTTP gateways reach this node's instances (default: this machine's address toward the server)")
	fs.IntVar(&f.maxInstances, "max-instances", 0, "most daemon instances this node runs (0: no limit)")
	fs.StringVar(&f.aotRuntime, "dart-aot-runtime", "", "dartaotruntime for aot apps (default: found on PATH)")
	fs.DurationVar(&f.heartbeat, "heartbeat", runner.DefaultHeartbeat, "heartbeat interval")
	fs.DurationVar(&f.nodeTimeout, "node-timeout", runner.DefaultNodeTimeout, "silence after which a node counts as dead")
	fs.StringSliceVar(&f.replyPrefixes, "reply-prefix", nil, "extra reply-subject prefixes the server allows (the same as its --reply-prefix)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log debug messages")
	fs.BoolVar(&f.logApps, "log-apps", false, "put the apps' output lines in the node's log too (they are always in dartup logs)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	f.isolation.register(cmd, "DATA-work, beside --data")
	f.tracing.register(cmd)
	return cmd
}

func runRunner(cmd *cobra.Command, f *runnerFlags) error {
	sf := serveFlags{verbose: f.verbose, logFormat: f.logFormat}
	logger, err := sf.logger()
	if err != nil {
		return err
	}
	labels, err := parseKV(f.labels, "--label")
	if err != nil {
		return err
	}
	isoOpts, err := f.isolation.options()
	if err != nil {
		return err
	}
	endpoint, err := f.tracing.check()
	if err != nil {
		return err
	}
	id := f.name
	if id == "" {
		if id, err = persistentNodeID(f.data); err != nil {
			return err
		}
	}
	leanSupervisor()
	ctx, stop := context.WithCancel(cmd.Context())
	defer stop()
	startMemtrim(ctx, logger)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		<-sigs
		logger.Info("shutting down (send the signal again to force)")
		stop()
		<-sigs
		os.Exit(1)
	}()
	// Nothing is buffered while disconnected: a status written by a node that
	// lost the server must not land after another node took the instance over.
	copts, ca, err := f.conn.resolve()
	if err != nil {
		return err
	}
	c, err := f.conn.dial(ctx, copts, nats.ReconnectBufSize(-1), nats.Name("dartup-runner "+id))
	if err != nil {
		return err
	}
	nc := c.Conn()
	// Answers to callers (lambda results, drain replies) go over a second,
	// reply-only connection: the server lets it publish to inboxes only.
	rc, err := f.conn.dial(ctx, copts, nats.Name(clientsdk.ReplyConnName+" "+id))
	if err != nil {
		nc.Close()
		return err
	}
	opts := append([]runner.Option{
		runner.WithDataDir(f.data), runner.WithLabels(labels),
		runner.WithMaxInstances(f.maxInstances), runner.WithDartAOTRuntime(f.aotRuntime),
		runner.WithTiming(f.heartbeat, f.nodeTimeout), runner.WithNATSURL(nc.ConnectedUrlRedacted()), runner.WithWorkerTLSCA(ca),
		runner.WithAdvertise(f.advertise),
	}, isoOpts...)
	tr, err := startTracing(ctx, endpoint, id, logger)
	if err != nil {
		nc.Close()
		rc.Close()
		return err
	}
	defer func() { _ = tr.shutdown(context.Background()) }()
	node, err := startNode(ctx, nodeConf{nc: nc, rnc: rc.Conn(), id: id, prefixes: f.replyPrefixes, logger: logger, opts: opts, logApps: f.logApps, tracing: tr.provider()})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "dartup runner %s joined %s as node %s\n", version.Version, nc.ConnectedUrlRedacted(), id)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := node.stop(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
