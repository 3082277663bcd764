// Package broker runs dartup's server side: an embedded nats-server with
// JetStream on a file store, the JetStream assets, the control API (a micro
// service named "dartup" on dartup.api.*), password authentication for NATS
// and HTTP, and the HTTP gateway. It is the only package that imports
// nats-server.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of `dartup serve`.
const (
	DefaultDataDir  = ".dartup"
	DefaultNATSAddr = "127.0.0.1:4222"
	DefaultHTTPAddr = "127.0.0.1:2374"
	// MaxPayload is the largest NATS message: above the 6 MiB lambda payload
	// limit, so that a too-large response can be answered with 413.
	MaxPayload = 8 << 20
)

// ErrInsecureBind is returned by Start (and Config.Check) when a listener would
// accept unauthenticated clients from other machines.
var ErrInsecureBind = errors.New("refusing to listen on a non-loopback address without --require-password")

// Config configures a Broker. The zero value, after Defaults, is a local
// single-node server on loopback.
type Config struct {
	// DataDir holds JetStream's store, the password file and the lock.
	DataDir string
	// NATSAddr is host:port for NATS clients; port 0 picks a free port.
	NATSAddr string
	// HTTPAddr is host:port for the HTTP gateway; "" disables it; port 0 picks a free port.
	HTTPAddr string
	// RequirePassword makes every NATS connection and HTTP request authenticate.
	RequirePassword bool
	// Insecure allows non-loopback listeners without RequirePassword.
	Insecure bool
	// TrustXForwardedFor takes the HTTP client's address from the last hop of
	// X-Forwarded-For (for the loopback exemption), as dart_up does by default.
	TrustXForwardedFor bool
	// ServerName names this server (default: the host name).
	ServerName string
	// ClusterAddr is host:port for cluster routes; "" runs a single server.
	ClusterAddr string
	// Routes are the nats://host:port route URLs of the other servers.
	Routes []string
	// Replicas for JetStream assets; 0 means min(3, cluster size).
	Replicas int
	// Version is reported by the info verb.
	Version string
	// Limits sizes the logs and events streams.
	Limits AssetLimits
	// Logger receives the server's and the broker's logs (default: discard).
	Logger *slog.Logger

	// logins replaces defaultLoginLimits (tests and benchmarks only).
	logins *loginLimits
}

// Defaults fills zero fields with their defaults.
func (c *Config) Defaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.NATSAddr == "" {
		c.NATSAddr = DefaultNATSAddr
	}
	if c.ServerName == "" {
		h, _ := os.Hostname()
		c.ServerName = clientsdk.TokenFrom(h, "dartup")
	}
	if c.Limits == (AssetLimits{}) {
		c.Limits = DefaultAssetLimits
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = discardLogger()
	}
}

// Check validates the addresses and the loopback rule. It returns an error
// wrapping ErrInsecureBind when a listener is not on loopback while passwords
// are not required and Insecure is not set.
func (c *Config) Check() error {
	type l struct{ what, addr, flag string }
	for _, x := range []l{{"NATS", c.NATSAddr, "--nats-addr"}, {"HTTP", c.HTTPAddr, "--address/--port"}, {"cluster", c.ClusterAddr, "--cluster-addr"}} {
		if x.addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(x.addr)
		if err != nil {
			return fmt.Errorf("%s address %q is not host:port (%s): %v", x.what, x.addr, x.flag, err)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return fmt.Errorf("%s port %q is not a number from 0 to 65535 (%s)", x.what, port, x.flag)
		}
		if x.what != "cluster" && !isLoopbackHost(host) && !c.RequirePassword && !c.Insecure {
			return fmt.Errorf("%w: %s on %q would let anyone on the network in; add --require-password (and create users with `dartup password USER`), or --insecure if something else guards it", ErrInsecureBind, x.what, x.addr)
		}
	}
	return nil
}

// Broker is a running dartup server.
type Broker struct {
	cfg       Config
	ns        *server.Server
	nc        *nats.Conn
	js        jetstream.JetStream
	api       *api
	gw        *gateway
	lock      *os.File
	passwords *Passwords
	logins    *loginGuard
	token     string
	workers   workerSecret
	router    *lambdaRouter
	started   time.Time
	logger    *slog.Logger

	shutdownOnce sync.Once
	shutdownErr  error
}

// Start validates cfg, takes the data dir's lock, starts the embedded NATS
// server with JetStream, creates the assets, and starts the control API and
// the HTTP gateway. Everything started is stopped again when a later step
// fails. Errors wrap ErrInsecureBind or ErrDataDirInUse where they apply.
func Start(ctx context.Context, cfg Config) (b *Broker, err error) {
	cfg.Defaults()
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	started := time.Now()
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dataDir
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	b = &Broker{cfg: cfg, lock: lock, started: started, logger: cfg.Logger.With("component", "broker")}
	defer func() {
		if err != nil {
			b.Shutdown(context.Background())
			b = nil
		}
	}()
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	b.token = hex.EncodeToString(tok)
	users := b.setUpAuth()

	opts, err := b.serverOptions()
	if err != nil {
		return b, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return b, fmt.Errorf("configure NATS server: %w", err)
	}
	ns.SetLoggerV2(natsLogger{cfg.Logger.With("component", "nats")}, false, false, false)
	b.ns = ns
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		return b, fmt.Errorf("NATS server did not become ready on %s (is the port in use?)", cfg.NATSAddr)
	}
	if !ns.JetStreamEnabled() {
		return b, errors.New("JetStream did not start; see the log above")
	}
	b.nc, err = b.Connect("dartup-broker")
	if err != nil {
		return b, err
	}
	b.js, err = jetstream.New(b.nc)
	if err != nil {
		return b, err
	}
	lim := cfg.Limits
	lim.Replicas = b.replicas()
	// A single server gets a minute; a cluster member waits for its peers
	// until it is stopped, as a clustered server should.
	actx, cancel := context.WithTimeout(ctx, 60*time.Second)
	if len(cfg.Routes) > 0 {
		cancel()
		actx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	if err := b.ensureAssetsWithRetry(actx, lim); err != nil {
		return b, err
	}
	b.api, err = startAPI(actx, b)
	if err != nil {
		return b, err
	}
	// The lambda router answers lambda.* requests no runner takes (404, 403, 503).
	if b.router, err = startLambdaRouter(actx, b); err != nil {
		return b, err
	}
	if cfg.HTTPAddr != "" {
		b.gw, err = startGateway(b)
		if err != nil {
			return b, err
		}
	}
	b.logger.Info("dartup server ready", "nats", b.NATSURL(), "http", b.HTTPURL(), "data", dataDir,
		"require_password", cfg.RequirePassword, "users", users, "startup", time.Since(started).Round(time.Millisecond))
	return b, nil
}

// setUpAuth makes the password checker and the login guard, and reads the
// password file now, so that a bad line is in the start-up log rather than
// at the first login. It returns the number of users.
func (b *Broker) setUpAuth() int {
	logger := b.cfg.Logger.With("component", "auth")
	b.passwords = NewPasswords(filepath.Join(b.cfg.DataDir, PasswordFileName), WithPasswordsLogger(logger))
	lim := defaultLoginLimits()
	if b.cfg.logins != nil {
		lim = *b.cfg.logins
	}
	b.logins = newLoginGuard(b.passwords, lim, logger)
	return b.passwords.load()
}

func (b *Broker) replicas() int {
	if b.cfg.Replicas > 0 {
		return b.cfg.Replicas
	}
	n := 1 + len(b.cfg.Routes)
	return min(n, 3)
}

func (b *Broker) serverOptions() (*server.Options, error) {
	host, portStr, _ := net.SplitHostPort(b.cfg.NATSAddr)
	port, _ := strconv.Atoi(portStr)
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:             b.cfg.ServerName,
		Host:                   host,
		Port:                   port,
		NoSigs:                 true,
		MaxPayload:             MaxPayload,
		MaxPending:             64 << 20,
		JetStream:              true,
		StoreDir:               b.cfg.DataDir, // nats-server adds "jetstream/"
		DisableJetStreamBanner: true,
		// The server normally PINGs a client 2 s after its CONNECT, even while
		// the authenticator still runs; a bcrypt check on a busy machine can
		// take longer, and the client then fails with "expected PONG, got
		// PING". Use the regular PingInterval for the first PING too.
		DisableShortFirstPing: true,
		CustomClientAuthentication: &authenticator{
			logins:        b.logins,
			require:       b.cfg.RequirePassword,
			internalToken: b.token,
			workers:       &b.workers,
		},
	}
	if b.cfg.ClusterAddr != "" {
		ch, cp, _ := net.SplitHostPort(b.cfg.ClusterAddr)
		p, _ := strconv.Atoi(cp)
		opts.Cluster = server.ClusterOpts{Name: "dartup", Host: ch, Port: p}
		for _, r := range b.cfg.Routes {
			u := server.RoutesFromStr(r)
			if len(u) == 0 {
				return nil, fmt.Errorf("route %q is not a nats://host:port URL", r)
			}
			opts.Routes = append(opts.Routes, u...)
		}
	}
	return opts, nil
}

// Connect opens an in-process NATS connection with dartup's internal
// credentials, for the broker's own services and an in-process runner.
func (b *Broker) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(b.ns), nats.Token(b.token), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect in-process: %w", err)
	}
	return nc, nil
}

// NATSURL returns the URL clients connect to, e.g. nats://127.0.0.1:4222.
func (b *Broker) NATSURL() string { return b.ns.ClientURL() }

// HTTPURL returns the gateway's base URL, or "" when it is disabled.
func (b *Broker) HTTPURL() string {
	if b.gw == nil {
		return ""
	}
	return "http://" + b.gw.ln.Addr().String()
}

// DataDir returns the absolute data dir.
func (b *Broker) DataDir() string { return b.cfg.DataDir }

// ServerName returns the embedded server's name.
func (b *Broker) ServerName() string { return b.cfg.ServerName }

// Ready reports whether NATS accepts connections and JetStream is enabled.
func (b *Broker) Ready() bool {
	return b.ns != nil && b.ns.Running() && b.ns.JetStreamEnabled() && b.nc != nil && b.nc.IsConnected()
}

// Shutdown stops accepting (gateway, control API), drains the broker's
// connection, and shuts the NATS server down, waiting for it. It joins the
// errors of each step. Calling it again returns the first call's result.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.shutdownOnce.Do(func() { b.shutdownErr = b.shutdown(ctx) })
	return b.shutdownErr
}

func (b *Broker) shutdown(ctx context.Context) error {
	var errs []error
	if b.gw != nil {
		errs = append(errs, b.gw.shutdown(ctx))
	}
	if b.router != nil {
		b.router.stop()
	}
	if b.api != nil {
		errs = append(errs, b.api.stop())
	}
	if b.nc != nil {
		if err := b.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
		for b.nc.IsDraining() {
			select {
			case <-ctx.Done():
				b.nc.Close()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
	if b.lock != nil {
		errs = append(errs, b.lock.Close())
	}
	return errors.Join(errs...)
}

// ensureAssetsWithRetry creates the JetStream assets and loads the worker
// secret. In a cluster, JetStream answers "temporarily unavailable" until
// enough servers have joined to elect a meta leader, so it retries until ctx
// ends, saying what it waits for.
func (b *Broker) ensureAssetsWithRetry(ctx context.Context, lim AssetLimits) error {
	delay := 100 * time.Millisecond
	// Requests sent before a meta leader exists are dropped, so first wait,
	// with short polls, until JetStream answers at all.
	for polls := 1; len(b.cfg.Routes) > 0; polls++ {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := b.js.AccountInfo(pctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no JetStream meta leader: %w (are the other servers in --routes running?)", err)
		}
		if polls == 3 || polls%30 == 0 {
			b.logger.Info("waiting for the other cluster members to elect a JetStream leader", "routes", b.cfg.Routes)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	for attempt := 1; ; attempt++ {
		// Before a cluster has a meta leader, JetStream requests go unanswered:
		// bound each attempt so that the loop can try again.
		actx, cancel := context.WithTimeout(ctx, 8*time.Second)
		err := EnsureAssets(actx, b.js, lim)
		if err == nil {
			var secret []byte
			if secret, err = ensureWorkerSecret(actx, b.js); err == nil {
				b.workers.v.Store(&secret)
				cancel()
				return nil
			}
		}
		cancel()
		if len(b.cfg.Routes) == 0 || ctx.Err() != nil {
			if ctx.Err() != nil && len(b.cfg.Routes) > 0 {
				return fmt.Errorf("JetStream assets with %d replicas: %w (are the other servers in --routes running?)", lim.Replicas, err)
			}
			return err
		}
		if attempt == 1 || attempt%20 == 0 {
			b.logger.Info("waiting for the cluster to elect a JetStream leader", "replicas", lim.Replicas, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}
