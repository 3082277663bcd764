//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/internal/datadir"
	"github.com/dartup/dartup/internal/memtrim"
	"github.com/dartup/dartup/internal/version"
	"github.com/dartup/dartup/runner"
	"github.com/spf13/cobra"
)

type serveFlags struct {
	advertise       string
	data            string
	natsAddr        string
	address         string
	port            int
	noHTTP          bool
	metricsAddr     string
	requirePassword bool
	insecure        bool
	xff             bool
	noXFF           bool
	name            string
	clusterAddr     string
	routes          []string
	secretFile      string
	tls             broker.TLSConfig
	replicas        int
	noRunner        bool
	directLambdas   bool
	verbose         bool
	logFormat       string
	pprof           string
	replyPrefixes   []string
	isolation       isolationFlags
	sync            string
	logApps         bool
	maxStore        sizeFlag
	logsMaxBytes    sizeFlag
	eventsMaxBytes  sizeFlag
	tracing         tracingFlags
}

// readyFile is written into the data dir once the server is ready, so that
// scripts and tests can find the URLs (it is removed on clean shutdown).
type readyFile struct {
	PID     int    `json:"pid"`
	NATSURL string `json:"nats_url"`
	HTTPURL string `json:"http_url,omitempty"`
	// TLSCA is the self-signed CA clients verify the server with.
	TLSCA   string `json:"tls_ca,omitempty"`
	Started string `json:"started"`
}

// ReadyFileName is the name of the ready file inside the data dir.
const ReadyFileName = "serve.json"

func newServeCmd() *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start a dartup server: embedded NATS + JetStream, HTTP gateway and a runner",
		Long: `Start a dartup server on this machine: an embedded NATS server with JetStream
(stored under --data), the control API, the HTTP gateway and a runner that
starts the pushed apps. Nothing else needs to be installed.

Without --require-password, clients need no password but only loopback
listeners are allowed. Create users with 'dartup password USER'. Outside
loopback, NATS and HTTP also need TLS (--tls-cert/--tls-key, or
--tls-self-signed for a CA and certificate made in DATA/tls), and cluster
routes need TLS and a cluster secret shared by every server
(--cluster-secret-file or env DARTUP_CLUSTER_SECRET); --insecure lifts these
rules when something else guards the network.`,
		Example: `  dartup serve                              # NATS on 127.0.0.1:4222, HTTP on 127.0.0.1:2374, data in ./.dartup
  dartup serve --data /var/lib/dartup -p 8080
  dartup serve --otlp-endpoint http://127.0.0.1:4318   # spans to an OpenTelemetry collector
  dartup serve --metrics-addr 127.0.0.1:9374        # Prometheus scrapes http://127.0.0.1:9374/metrics
  dartup serve --require-password --tls-self-signed -a 0.0.0.0 --nats-addr 0.0.0.0:4222
  dartup serve --require-password --tls-cert /etc/dartup/server.pem --tls-key /etc/dartup/server-key.pem \
    --tls-ca /etc/dartup/ca.pem --nats-addr 0.0.0.0:4222 -a 0.0.0.0 \
    --cluster-addr 10.0.0.1:6222 --routes nats://10.0.0.2:6222 --cluster-secret-file /etc/dartup/cluster-secret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), f) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.data, "data", envOr("DARTUP_DATA", broker.DefaultDataDir), "data directory (env DARTUP_DATA)")
	fs.StringVar(&f.natsAddr, "nats-addr", broker.DefaultNATSAddr, "NATS listen address host:port (port 0 picks a free one)")
	fs.StringVarP(&f.address, "address", "a", "127.0.0.1", "HTTP gateway listen address")
	fs.IntVarP(&f.port, "port", "p", 2374, "HTTP gateway port (0 picks a free one)")
	fs.BoolVar(&f.noHTTP, "no-http", false, "do not start the HTTP gateway")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "also serve Prometheus /metrics alone on this host:port, under the gateway's password rule (it is on the gateway either way; docs/metrics.md)")
	fs.BoolVar(&f.requirePassword, "require-password", false, "every NATS connection and HTTP request must authenticate")
	fs.BoolVar(&f.insecure, "insecure", false, "allow non-loopback listeners without --require-password")
	fs.BoolVar(&f.xff, "x-forwarded-for", true, "judge the HTTP loopback exemption on the last X-Forwarded-For hop from a local proxy")
	fs.BoolVar(&f.noXFF, "no-x-forwarded-for", false, "ignore X-Forwarded-For")
	fs.StringVar(&f.name, "name", "", "server and node name (default: host name)")
	fs.StringVar(&f.clusterAddr, "cluster-addr", "", "listen for cluster routes on host:port")
	fs.StringSliceVar(&f.routes, "routes", nil, "route URLs of the other servers, nats://host:6222,…")
	fs.StringVar(&f.secretFile, "cluster-secret-file", "", "file holding the cluster secret that routes authenticate with, the same on every server (or env DARTUP_CLUSTER_SECRET)")
	fs.StringVar(&f.tls.CertFile, "tls-cert", "", "TLS certificate (PEM) for NATS, HTTPS and, by default, routes")
	fs.StringVar(&f.tls.KeyFile, "tls-key", "", "TLS private key (PEM) of --tls-cert")
	fs.StringVar(&f.tls.CAFile, "tls-ca", "", "CA (PEM) for --tls-verify-clients, routes and this server's workers")
	fs.BoolVar(&f.tls.VerifyClients, "tls-verify-clients", false, "require a client certificate from --tls-ca (mutual TLS; workers use their token)")
	fs.BoolVar(&f.tls.SelfSigned, "tls-self-signed", false, "make (or reuse) a CA and server certificate in DATA/tls and use them")
	fs.StringVar(&f.tls.ClusterCertFile, "cluster-tls-cert", "", "TLS certificate (PEM) for routes, with clientAuth too (default --tls-cert)")
	fs.StringVar(&f.tls.ClusterKeyFile, "cluster-tls-key", "", "TLS private key (PEM) of --cluster-tls-cert")
	fs.StringVar(&f.tls.ClusterCAFile, "cluster-tls-ca", "", "CA (PEM) that signs the servers' route certificates (default --tls-ca, or the self-signed CA)")
	fs.IntVar(&f.replicas, "replicas", 0, "JetStream replicas (default min(3, cluster size))")
	fs.BoolVar(&f.noRunner, "no-runner", false, "run a pure broker: do not start apps on this server")
	fs.BoolVar(&f.directLambdas, "direct-lambdas", true, "native (--protocol nats) lambda workers take their requests themselves, dartup is their fallback (docs/lambdas.md); false hands them their events as runner nodes do")
	fs.StringVar(&f.advertise, "advertise", "", "host or IP at which the other servers' HTTP gateways reach this server's instances (default: 127.0.0.1, or with --routes this machine's address toward the first route)")
	fs.StringSliceVar(&f.replyPrefixes, "reply-prefix", nil, "also answer requests whose reply subject starts with this token (clients with a custom inbox prefix; _INBOX and _INBOX_APP always)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log debug messages (nats-server's too)")
	fs.BoolVar(&f.logApps, "log-apps", false, "put the apps' output lines in serve's log too (they are always in dartup logs)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.pprof, "pprof", "", "serve Go's pprof profiles on this loopback host:port (debugging)")
	_ = fs.MarkHidden("pprof")
	fs.StringVar(&f.sync, "sync", string(broker.SyncAuto), "when JetStream syncs writes to disk: always (a push is on disk before it is acknowledged; logs and events excepted), interval (within 2 minutes), auto (always on a single server, interval in a cluster)")
	fs.Var(&f.maxStore, "max-store", "the most JetStream stores on the data disk, e.g. 20GiB (default: what it holds plus 3/4 of the disk's free space at start, 3/8 when this server runs apps too)")
	fs.Var(&f.logsMaxBytes, "logs-max-bytes", "the most the app logs stream keeps, oldest lines dropped first, at least 1MiB (default or 0: 1/8 of the store, at most 256MiB)")
	fs.Var(&f.eventsMaxBytes, "events-max-bytes", "the most the lifecycle events stream keeps, at least 1MiB (default or 0: 1/32 of the store, at most 64MiB)")
	f.isolation.register(cmd, "DATA-work, beside the data dir")
	f.tracing.register(cmd)
	return cmd
}

func (f *serveFlags) logger() (*slog.Logger, error) {
	lvl := slog.LevelInfo
	if f.verbose {
		lvl = slog.LevelDebug
	}
	ho := &slog.HandlerOptions{Level: lvl}
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, ho)), nil
	}
	return nil, usageErr(fmt.Errorf("--log-format must be text or json, not %q", f.logFormat))
}

func runServe(ctx context.Context, f *serveFlags) error {
	logger, err := f.logger()
	if err != nil {
		return err
	}
	cfg, err := f.config(logger)
	if err != nil {
		return err
	}
	isoOpts, err := f.isolation.options()
	if err != nil {
		return err
	}
	leanSupervisor()
	if f.pprof != "" {
		if err := startPprof(f.pprof, logger); err != nil {
			return usageErr(err)
		}
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	startMemtrim(ctx, logger)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s := <-sigs
		logger.Info("shutting down (send the signal again to force)", "signal", s.String())
		stop()
		s = <-sigs
		logger.Error("forced exit", "signal", s.String())
		os.Exit(1)
	}()

	tr, err := f.startTracing(ctx, &cfg, logger)
	if err != nil {
		return err
	}
	defer func() { _ = tr.shutdown(context.Background()) }() // after the runner and the broker: spans they end are flushed
	b, err := broker.Start(ctx, cfg)
	if err != nil {
		if errors.Is(err, broker.ErrDataDirInUse) {
			return &exitError{code: 1, err: err}
		}
		return err
	}
	banner(b)
	var node *nodeAgent
	if !f.noRunner {
		node, err = startLocalRunner(ctx, b, logger, f.logApps, tr.provider(), append(isoOpts, runner.WithWorkerTLSCA(b.WorkerCA()), runner.WithAdvertise(f.serveAdvertise()))...)
		if err != nil {
			_ = b.Shutdown(context.Background())
			return err
		}
	}
	ready := announce(b, logger)
	if os.Geteuid() == 0 && !f.requirePassword {
		logger.Warn("dartup runs as root without --require-password: every local user of this machine (apps excepted: they connect with their own tokens) can connect without a password and control this server, which runs commands; add --require-password and create users with `dartup password USER`")
	}

	<-ctx.Done()
	_ = os.Remove(ready)
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if node != nil {
		errs = append(errs, node.stop(sctx))
	}
	errs = append(errs, b.Shutdown(sctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped cleanly")
	return nil
}

// config turns the flags into a checked broker config; a mistake is a usage
// error (exit 2).
func (f *serveFlags) config(logger *slog.Logger) (broker.Config, error) {
	if f.port < 0 || f.port > 65535 {
		return broker.Config{}, usageErr(fmt.Errorf("--port %d is not from 0 to 65535", f.port))
	}
	cfg := broker.Config{
		DataDir:            f.data,
		NATSAddr:           f.natsAddr,
		RequirePassword:    f.requirePassword,
		Insecure:           f.insecure,
		TrustXForwardedFor: f.xff && !f.noXFF,
		MetricsAddr:        f.metricsAddr,
		ServerName:         f.name,
		ClusterAddr:        f.clusterAddr,
		Routes:             f.routes,
		TLS:                f.tls,
		Replicas:           f.replicas,
		ReplyPrefixes:      f.replyPrefixes,
		Version:            version.Version,
		Logger:             logger,
		MaxStore:           int64(f.maxStore),
		LocalRunner:        !f.noRunner,
		DirectLambdas:      !f.noRunner && f.directLambdas,
		Sync:               broker.SyncMode(f.sync),
		Limits:             broker.AssetLimits{LogsMaxBytes: int64(f.logsMaxBytes), EventsMaxBytes: int64(f.eventsMaxBytes)},
	}
	if !f.noHTTP {
		if err := checkGatewayHost(f.address); err != nil {
			return cfg, usageErr(err)
		}
		cfg.HTTPAddr = net.JoinHostPort(f.address, strconv.Itoa(f.port))
	}
	var err error
	if cfg.AppUser, err = f.isolation.appUser(); err != nil {
		return cfg, err
	}
	if cfg.ClusterSecret, err = f.clusterSecret(logger); err != nil {
		return cfg, usageErr(err)
	}
	if err := cfg.Check(); err != nil {
		return cfg, usageErr(err)
	}
	if _, err := f.tracing.check(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// announce writes the ready file and prints the ready line (and, with a
// self-signed certificate, where its CA is); it returns the ready file's path.
// banner says where the server serves, first thing once it does.
func banner(b *broker.Broker) {
	fmt.Fprintf(os.Stderr, "dartup %s serving: NATS %s, HTTP %s, data %s\n", version.Version, b.NATSURL(), orNone(b.HTTPURL()), b.DataDir())
	if ca := b.SelfSignedCA(); ca != "" {
		fmt.Fprintf(os.Stderr, "TLS: self-signed; clients verify the server with the CA %s\n  (dartup --tls-ca %[1]s, or env DARTUP_TLS_CA; nats --tlsca %[1]s; curl --cacert %[1]s)\n", ca)
	}
}

// announce writes the ready file once the server and its runner run, and
// returns its path.
func announce(b *broker.Broker, logger *slog.Logger) string {
	ready := filepath.Join(b.DataDir(), ReadyFileName)
	rb, _ := json.MarshalIndent(readyFile{PID: os.Getpid(), NATSURL: b.NATSURL(), HTTPURL: b.HTTPURL(), TLSCA: b.SelfSignedCA(),
		Started: time.Now().UTC().Format(time.RFC3339Nano)}, "", "  ")
	if err := writeFileAtomic(ready, rb, 0o600); err != nil {
		logger.Warn("could not write ready file", "path", ready, "err", err)
	}
	return ready
}

// clusterSecret reads the cluster secret from --cluster-secret-file, else
// from env DARTUP_CLUSTER_SECRET ("" when neither is set). Surrounding white
// space is dropped. A file that others may read is worth a warning.
func (f *serveFlags) clusterSecret(logger *slog.Logger) (string, error) {
	env := strings.TrimSpace(os.Getenv("DARTUP_CLUSTER_SECRET"))
	if f.secretFile == "" {
		return env, checkSecretText(env, "DARTUP_CLUSTER_SECRET")
	}
	if env != "" {
		logger.Warn("both --cluster-secret-file and DARTUP_CLUSTER_SECRET are set; using the file")
	}
	b, err := os.ReadFile(f.secretFile)
	if err != nil {
		return "", fmt.Errorf("--cluster-secret-file: %w", err)
	}
	if st, err := os.Stat(f.secretFile); err == nil && st.Mode().Perm()&0o044 != 0 {
		logger.Warn("the cluster secret file can be read by other users of this machine; chmod 600 it", "file", f.secretFile, "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("--cluster-secret-file %s is empty", f.secretFile)
	}
	return s, checkSecretText(s, "--cluster-secret-file "+f.secretFile)
}

// checkSecretText refuses a cluster secret that routes cannot carry: it
// travels as a password in the routes' CONNECT (JSON), which must be valid
// UTF-8 without control characters (make one with `openssl rand -base64 32`).
func checkSecretText(s, where string) error {
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%s holds bytes that are not printable text (binary data?); routes could not authenticate with it: make one with `openssl rand -base64 32`", where)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file next to path and renames it
// into place, so that readers (scripts waiting for the ready file) never see
// a partial file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// serveAdvertise is the host the embedded runner advertises: --advertise,
// else, in a cluster, this machine's address toward the first route, else
// loopback.
func (f *serveFlags) serveAdvertise() string {
	if f.advertise != "" {
		return f.advertise
	}
	if len(f.routes) > 0 {
		return runner.AdvertiseFor(f.routes[0])
	}
	return "127.0.0.1"
}

// isServerUsageError reports whether err is a server setting refused at
// start (an insecure listener, a data dir that is not dartup's): exit 2.
func isServerUsageError(err error) bool {
	return errors.Is(err, broker.ErrInsecureBind) || errors.Is(err, datadir.ErrNotOurs)
}

// startTracing starts the OpenTelemetry SDK when --otlp-endpoint is set
// and hands its provider to the gateway (cfg).
func (f *serveFlags) startTracing(ctx context.Context, cfg *broker.Config, logger *slog.Logger) (*tracing, error) {
	endpoint, err := f.tracing.check()
	if err != nil {
		return nil, err
	}
	tr, err := startTracing(ctx, endpoint, cfg.ServerName, logger)
	if err != nil {
		return nil, err
	}
	cfg.TracerProvider = tr.provider()
	return tr, nil
}

// leanSupervisor makes the GC collect at 50% heap growth rather than Go's
// default 100%, unless the user set GOGC: a supervisor should be lean
// (measured: 100 idle daemons, 63 MB RSS at GOGC=100, 59 MB at 50; see
// docs/benchmarks.md).
func leanSupervisor() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}

// startMemtrim returns memory to the OS while the process is quiet, until
// ctx ends, unless DARTUP_MEMTRIM=off (docs/operations.md).
func startMemtrim(ctx context.Context, logger *slog.Logger) {
	if os.Getenv("DARTUP_MEMTRIM") != "off" {
		go memtrim.Run(ctx, logger.With("component", "memtrim"))
	}
}

// checkGatewayHost refuses an --address that is empty or not a bare host or IP (a
// host:port, as --nats-addr takes, would otherwise be read as a host
// named "127.0.0.1:8080").
func checkGatewayHost(host string) error {
	if host == "" { // net.Listen would take every interface
		return errors.New("--address is empty; give a host or IP, e.g. 127.0.0.1, or 0.0.0.0 for every interface")
	}
	if h, port, err := net.SplitHostPort(host); err == nil && port != "" && strings.Trim(port, "0123456789") == "" {
		return fmt.Errorf("--address %q takes a host or IP only; give the port with --port: --address %s --port %s", host, h, port)
	}
	if _, err := netip.ParseAddr(host); err != nil && strings.ContainsAny(host, "/[]:% ") { // an IPv6 zone is fine
		return fmt.Errorf("--address %q is not a host or IP, e.g. 127.0.0.1, 0.0.0.0 or ::1", host)
	}
	return nil
}
