// Package broker runs dartup's server side: an embedded nats-server with
// JetStream on a file store, the JetStream assets, the control API (a micro
// service named "dartup" on dartup.api.*), password authentication for NATS
// and HTTP, and the HTTP gateway. It is the only package that imports
// nats-server.
package broker

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/datadir"
	"github.com/dartup/dartup/internal/leafnode"
	"github.com/dartup/dartup/internal/replies"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
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

// ErrInsecureBind is matched (errors.Is) by the *InsecureBindError that Start
// and Config.Check return when a listener would be open to the network.
var ErrInsecureBind = errors.New("refusing an insecure listener")

// MinClusterSecret is the shortest cluster secret Config.Check accepts.
const MinClusterSecret = 16

// InsecureBindError refuses a listener that other machines could use without
// the protection the binding rule asks for: outside loopback, NATS and HTTP
// need passwords (--require-password) and TLS; cluster routes need TLS and a
// cluster secret, and need the secret on loopback too when passwords are
// required. --insecure (Config.Insecure) lifts the rule. It matches
// ErrInsecureBind.
type InsecureBindError struct {
	// Listener is "NATS", "HTTP", "metrics" or "cluster".
	Listener string
	// Addr is the listen address, host:port.
	Addr string
	// Missing is MissingPassword, MissingTLS or MissingClusterSecret.
	Missing string
}

// What an InsecureBindError found missing.
const (
	MissingPassword      = "password"
	MissingTLS           = "TLS"
	MissingClusterSecret = "cluster secret"
)

// Error says what is missing and which flags would fix it.
func (e *InsecureBindError) Error() string {
	const orInsecure = ", or --insecure if something else guards the network"
	switch {
	case e.Missing == MissingPassword:
		return fmt.Sprintf("refusing to listen on a non-loopback address without --require-password: %s on %q would let anyone on the network in; add --require-password (and create users with `dartup password USER`), or --insecure if something else guards it", e.Listener, e.Addr)
	case e.Missing == MissingClusterSecret:
		return fmt.Sprintf("refusing cluster routes without a cluster secret: any NATS server that reaches %q could join the cluster and read and write everything, passwords or not; give every server the same secret with --cluster-secret-file FILE (or env DARTUP_CLUSTER_SECRET)%s", e.Addr, orInsecure)
	case e.Listener == "cluster":
		return fmt.Sprintf("refusing to listen on a non-loopback address without TLS: cluster routes on %q would carry every message and the cluster secret in clear; add --tls-cert and --tls-key, --cluster-tls-cert and --cluster-tls-key, or --tls-self-signed%s", e.Addr, orInsecure)
	}
	return fmt.Sprintf("refusing to listen on a non-loopback address without TLS: %s on %q would carry passwords and data in clear; add --tls-cert and --tls-key (or --tls-self-signed)%s", e.Listener, e.Addr, orInsecure)
}

// Is makes errors.Is(err, ErrInsecureBind) true.
func (e *InsecureBindError) Is(target error) bool { return target == ErrInsecureBind }

// Config configures a Broker. The zero value, after Defaults, is a local
// single-node server on loopback.
type Config struct {
	// DataDir holds JetStream's store, the password file and the lock.
	DataDir string
	// NATSAddr is host:port for NATS clients; port 0 picks a free port.
	NATSAddr string
	// HTTPAddr is host:port for the HTTP gateway; "" disables it; port 0 picks a free port.
	HTTPAddr string
	// MetricsAddr is host:port for a listener that serves /metrics alone
	// (under the gateway's authentication rule); "" for none: /metrics is
	// on the gateway either way.
	MetricsAddr string
	// HTTPMaxConns caps the gateway's open client connections (0: a quarter
	// of the process's file descriptor limit): idle clients cannot take the
	// descriptors NATS and JetStream need. Connections over the cap wait to
	// be accepted.
	HTTPMaxConns int
	// RequirePassword makes every NATS connection and HTTP request authenticate.
	RequirePassword bool
	// Insecure lifts the binding rule (see InsecureBindError): something
	// else guards the network.
	Insecure bool
	// TrustXForwardedFor takes the HTTP client's address from the last hop of
	// X-Forwarded-For (for the loopback exemption), as dart_up does by default.
	TrustXForwardedFor bool
	// ServerName names this server (default: the host name).
	ServerName string
	// ClusterAddr is host:port for cluster routes; "" runs a single server.
	ClusterAddr string
	// Routes are the nats://host:port route URLs of the other servers, without
	// a user or password (the credential is ClusterSecret).
	Routes []string
	// ClusterSecret authenticates routes: a server routes in only with the
	// same secret. Required (MinClusterSecret bytes at least) when the
	// cluster address is not loopback or passwords are required.
	ClusterSecret string
	// TLS configures TLS for the NATS client port, the gateway and routes.
	TLS TLSConfig
	// Replicas for JetStream assets; 0 means min(3, cluster size).
	Replicas int
	// Version is reported by the info verb.
	Version string
	// ReplyPrefixes are extra first subject tokens, besides "_INBOX" and
	// "_INBOX_APP", that dartup answers requests on (for clients with a
	// custom inbox prefix); see clientsdk.IsReplySubject.
	ReplyPrefixes []string
	// AppUser reports whether uid is a user dartup's apps run as (see
	// runner.WithIsolation). Without passwords, loopback clients need none,
	// except those running as an app's user: an app may not use the local
	// exemption to act with more rights than its token gives. nil: none.
	AppUser func(uid uint32) bool
	// Limits sizes the logs and events streams; zero byte limits are sized
	// from the data disk (see planStorage).
	Limits AssetLimits
	// MaxStore bounds JetStream's file store (0: what it holds plus 3/4 of
	// the data disk's free space at start, 3/8 with LocalRunner).
	MaxStore int64
	// Sync says when JetStream syncs its writes to disk (default SyncAuto).
	Sync SyncMode
	// LocalRunner says that a runner in this process keeps its artifact
	// cache on the data disk too.
	LocalRunner bool
	// DirectLambdas runs a leaf-node server for the local runner's native
	// lambdas in direct mode (FallbackConn; docs/lambdas.md).
	DirectLambdas bool
	// Logger receives the server's and the broker's logs (default: discard).
	Logger *slog.Logger
	// TracerProvider, when set, records a server span per gateway request
	// (docs/tracing.md); nil records none (trace headers are passed on all the same).
	TracerProvider trace.TracerProvider

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
	if c.Limits.LogsMaxAge == 0 {
		c.Limits.LogsMaxAge = DefaultAssetLimits.LogsMaxAge
	}
	if c.Limits.EventsMaxAge == 0 {
		c.Limits.EventsMaxAge = DefaultAssetLimits.EventsMaxAge
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Sync == "" {
		c.Sync = SyncAuto
	}
	if c.Logger == nil {
		c.Logger = discardLogger()
	}
}

// Check validates the addresses, the TLS settings and the binding rule. It
// returns an *InsecureBindError (matching ErrInsecureBind) when a listener
// breaks the rule, and another error for malformed settings.
func (c *Config) Check() error {
	switch c.Sync {
	case "", SyncAuto, SyncAlways, SyncInterval:
	default:
		return fmt.Errorf("--sync must be auto, always or interval, not %q", c.Sync)
	}
	for _, p := range c.ReplyPrefixes {
		if err := clientsdk.ValidateReplyPrefix(p); err != nil {
			return fmt.Errorf("--reply-prefix: %w", err)
		}
	}
	type l struct{ what, addr, flag string }
	for _, x := range []l{{"NATS", c.NATSAddr, "--nats-addr"}, {"HTTP", c.HTTPAddr, "--address/--port"}, {"metrics", c.MetricsAddr, "--metrics-addr"}, {"cluster", c.ClusterAddr, "--cluster-addr"}} {
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
		if err := c.checkBind(x.what, x.addr, isLoopbackHost(host)); err != nil {
			return err
		}
	}
	if err := c.checkRoutes(); err != nil {
		return err
	}
	return c.TLS.check(c.ClusterAddr != "")
}

// checkBind applies the binding rule to one listener.
func (c *Config) checkBind(what, addr string, loopback bool) error {
	if c.Insecure {
		return nil
	}
	if what == "cluster" {
		switch {
		case c.ClusterSecret == "" && (!loopback || c.RequirePassword):
			return &InsecureBindError{Listener: what, Addr: addr, Missing: MissingClusterSecret}
		case !loopback && !c.TLS.routes():
			return &InsecureBindError{Listener: what, Addr: addr, Missing: MissingTLS}
		}
		return nil
	}
	switch {
	case loopback:
	case !c.RequirePassword:
		return &InsecureBindError{Listener: what, Addr: addr, Missing: MissingPassword}
	case !c.TLS.Enabled():
		return &InsecureBindError{Listener: what, Addr: addr, Missing: MissingTLS}
	}
	return nil
}

// checkRoutes validates the route URLs and the cluster secret.
func (c *Config) checkRoutes() error {
	if c.ClusterSecret != "" && len(c.ClusterSecret) < MinClusterSecret {
		return fmt.Errorf("the cluster secret has %d bytes; use at least %d random ones (e.g. `head -c 32 /dev/urandom | base64 > FILE`)", len(c.ClusterSecret), MinClusterSecret)
	}
	if len(c.Routes) > 0 && c.ClusterAddr == "" {
		return errors.New("--routes needs --cluster-addr")
	}
	if c.ClusterAddr != "" && len(c.Routes) == 0 {
		// nats-server cannot start JetStream's cluster mode without routes.
		return errors.New("--cluster-addr needs --routes: the route URLs of the other servers")
	}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			return fmt.Errorf("route %q is not a nats://host:port URL", r)
		}
		if u.User != nil {
			return fmt.Errorf("route %s carries a user or password; give the cluster secret with --cluster-secret-file (or env DARTUP_CLUSTER_SECRET) instead: command lines are visible to every user of the machine", u.Redacted())
		}
	}
	return nil
}

// Broker is a running dartup server.
type Broker struct {
	cfg Config
	ns  *server.Server
	// leaf is the leaf-node server of DirectLambdas (nil without).
	leaf         *leafnode.Server
	leafPassword string
	nc           *nats.Conn
	// apiNC serves the control API: it may only receive API requests and
	// publish replies (apiConnName).
	apiNC *nats.Conn
	// replies answers dartup.lambda.why.NAME requests, over a reply-only
	// connection.
	replies   *replies.Replier
	js        jetstream.JetStream
	api       *api
	gw        *gateway
	metrics   *metrics
	lock      *os.File
	passwords *Passwords
	auth      *authenticator
	// clientPort is the NATS client port (the authenticator matches local
	// clients' sockets against it).
	clientPort atomic.Int32
	logins     *loginGuard
	token      string
	workers    workerSecret
	router     *lambdaRouter
	async      *asyncDispatcher
	schedules  *scheduleKeeper
	tls        *tlsSetup
	started    time.Time
	logger     *slog.Logger
	// storeDir is JetStream's directory, on the disk whose space is reported.
	storeDir string
	// ledger keeps a copy of the desired state to check the apps bucket with.
	ledger *ledger
	// disk recovers from a full disk; diskStop ends its loop and waits.
	disk     *diskGuard
	diskStop func()

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
	// The store holds the worker secret and the password hashes: only
	// dartup's own user may enter it, and only a directory that is dartup's
	// (or new, or empty) is taken.
	if err := datadir.Prepare(dataDir, datadir.Data); err != nil {
		return nil, err
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
	b.disk = newDiskGuard(b)
	if err := b.sizeStorage(); err != nil {
		return b, err
	}
	if err := b.startNATS(); err != nil {
		return b, err
	}
	b.nc, err = b.Connect("dartup-broker")
	if err != nil {
		return b, err
	}
	b.js, err = jetstream.New(b.nc)
	if err != nil {
		return b, err
	}
	if b.apiNC, err = b.Connect(apiConnName); err != nil {
		return b, err
	}
	rnc, err := b.Connect(clientsdk.ReplyConnName + " broker")
	if err != nil {
		return b, err
	}
	b.replies = replies.New(rnc, b.logger, cfg.ReplyPrefixes...)
	lim := b.cfg.Limits
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
	if b.ledger, err = startLedger(actx, b); err != nil {
		return b, err
	}
	b.api, err = startAPI(actx, b)
	if err != nil {
		return b, err
	}
	// The lambda router says why lambda.NAME requests found no responders (404, 403, 503, 502).
	if b.router, err = startLambdaRouter(actx, b); err != nil {
		return b, err
	}
	b.auth.apps.Store(b.router) // worker tokens are checked against the apps from now on
	// The schedules stream follows the lambdas' schedules (schedules.go).
	if b.schedules, err = startScheduleKeeper(actx, b); err != nil {
		return b, err
	}
	// The async dispatcher hands stored events to the lambdas (async.go).
	if b.async, err = startAsync(actx, b); err != nil {
		return b, fmt.Errorf("async dispatcher: %w", err)
	}
	dctx, dcancel := context.WithCancel(context.Background())
	ddone := make(chan struct{})
	go func() { defer close(ddone); b.disk.run(dctx) }()
	b.diskStop = func() { dcancel(); <-ddone }
	b.metrics = newMetrics(b)
	if cfg.HTTPAddr != "" {
		b.gw, err = startGateway(b)
		if err != nil {
			return b, err
		}
	}
	if cfg.MetricsAddr != "" {
		if err := b.metrics.listen(); err != nil {
			return b, err
		}
	}
	b.warnWorkerTrust()
	b.logger.Debug("dartup server ready", "nats", b.NATSURL(), "http", b.HTTPURL(), "data", dataDir,
		"require_password", cfg.RequirePassword, "users", users, "tls", cfg.TLS.Enabled(), "route_tls", b.tls.routes != nil,
		"startup", time.Since(started).Round(time.Millisecond))
	return b, nil
}

// startNATS resolves the TLS certificates and starts the embedded server.
func (b *Broker) startNATS() error {
	var err error
	if b.tls, err = resolveTLS(&b.cfg); err != nil {
		return err
	}
	if len(b.tls.created) > 0 {
		b.logger.Info("self-signed TLS: made "+strings.Join(b.tls.created, " and "), "ca", b.tls.selfSignedCA)
	}
	opts, err := b.serverOptions()
	if err != nil {
		return err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("configure NATS server: %w", err)
	}
	var fatal atomic.Pointer[string]
	ns.SetLoggerV2(natsLogger{l: b.cfg.Logger.With("component", "nats"), fatal: &fatal, onError: b.disk.noteServerError}, false, false, false)
	b.ns = ns
	go ns.Start()
	// Wait for the server, but not for one that failed for good (a port in
	// use: it logs a fatal error and would never be ready).
	for deadline := time.Now().Add(30 * time.Second); !ns.ReadyForConnections(100 * time.Millisecond); {
		if msg := fatal.Load(); msg != nil {
			return fmt.Errorf("the NATS server cannot start: %s (choose another --nats-addr or --cluster-addr)", *msg)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("NATS server did not become ready on %s within 30s", b.cfg.NATSAddr)
		}
	}
	if !ns.JetStreamEnabled() {
		return errors.New("JetStream did not start; see the log above")
	}
	if a, ok := ns.Addr().(*net.TCPAddr); ok {
		b.clientPort.Store(int32(a.Port))
	}
	if b.cfg.DirectLambdas {
		if b.leaf, err = leafnode.Start(ns, opts, b.leafPassword); err != nil {
			return err
		}
	}
	return nil
}

// FallbackConn returns the connection to the leaf-node server through
// which the local runner subscribes its native lambdas in direct mode
// (lambdas.WithFallbackConn), or nil without DirectLambdas.
func (b *Broker) FallbackConn() *nats.Conn {
	if b.leaf == nil {
		return nil
	}
	return b.leaf.Conn()
}

// setUpAuth makes the password checker, the login guard and the NATS
// authenticator, and reads the password file now, so that a bad line is in
// the start-up log rather than at the first login. It returns the number of
// users.
func (b *Broker) setUpAuth() int {
	logger := b.cfg.Logger.With("component", "auth")
	b.passwords = NewPasswords(filepath.Join(b.cfg.DataDir, PasswordFileName), WithPasswordsLogger(logger))
	lim := defaultLoginLimits()
	if b.cfg.logins != nil {
		lim = *b.cfg.logins
	}
	b.logins = newLoginGuard(b.passwords, lim, logger)
	b.auth = &authenticator{
		logins:        b.logins,
		require:       b.cfg.RequirePassword,
		verifyClients: b.cfg.TLS.VerifyClients,
		internalToken: b.token,
		workers:       &b.workers,
		replyPrefixes: b.cfg.ReplyPrefixes,
		appUser:       b.cfg.AppUser,
		natsPort:      func() int { return int(b.clientPort.Load()) },
	}
	return b.passwords.load()
}

func (b *Broker) replicas() int {
	if b.cfg.Replicas > 0 {
		return b.cfg.Replicas
	}
	n := 1 + len(b.cfg.Routes)
	return min(n, 3)
}

// SyncMode says when JetStream syncs its writes to disk.
type SyncMode string

// Sync modes.
const (
	// SyncAuto: SyncAlways on a single server, SyncInterval in a cluster
	// (where a write is acknowledged once a majority of servers hold it).
	SyncAuto SyncMode = "auto"
	// SyncAlways: every write is on disk before it is acknowledged, except
	// the logs and events streams' (fsync per log line would cap them at
	// about 13,000 lines/s); see EnsureAssets.
	SyncAlways SyncMode = "always"
	// SyncInterval: writes reach the disk within JetStream's sync interval
	// (2 minutes); a power loss may lose what came since.
	SyncInterval SyncMode = "interval"
)

// syncAlways reports whether JetStream syncs every write.
func (b *Broker) syncAlways() bool {
	switch b.cfg.Sync {
	case SyncAlways:
		return true
	case SyncInterval:
		return false
	}
	return b.replicas() == 1
}

func (b *Broker) serverOptions() (*server.Options, error) {
	host, portStr, _ := net.SplitHostPort(b.cfg.NATSAddr)
	port, _ := strconv.Atoi(portStr)
	if port == 0 {
		port = server.RANDOM_PORT
	} else {
		// Known before the server accepts anyone: a local client that
		// connects during start-up is told apart from an app's user.
		b.clientPort.Store(int32(port))
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
		JetStreamMaxStore:      b.cfg.MaxStore,
		SyncAlways:             b.syncAlways(),
		DisableJetStreamBanner: true,
		// The server normally PINGs a client 2 s after its CONNECT, even while
		// the authenticator still runs; a bcrypt check on a busy machine can
		// take longer, and the client then fails with "expected PONG, got
		// PING". Use the regular PingInterval for the first PING too.
		DisableShortFirstPing:      true,
		CustomClientAuthentication: b.auth,
	}
	if b.cfg.DirectLambdas {
		opts.LeafNode, b.leafPassword = leafnode.HubOptions()
	}
	if b.tls.clients != nil {
		opts.TLSConfig = b.tls.clients
		opts.TLSTimeout = 5
	}
	if b.cfg.ClusterAddr != "" {
		if err := b.clusterOptions(opts); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// routeUser is the user name routes present with the cluster secret.
const routeUser = "dartup-route"

// clusterOptions sets up routes: the listener, the secret that other servers
// must present (and that this one presents to them: it goes into the route
// URLs handed to nats-server only, never into cfg.Routes, which is logged),
// and mutual TLS.
func (b *Broker) clusterOptions(opts *server.Options) error {
	ch, cp, _ := net.SplitHostPort(b.cfg.ClusterAddr)
	p, _ := strconv.Atoi(cp)
	if p == 0 {
		p = server.RANDOM_PORT
	}
	opts.Cluster = server.ClusterOpts{Name: "dartup", Host: ch, Port: p}
	if b.cfg.ClusterSecret != "" {
		opts.Cluster.Username, opts.Cluster.Password = routeUser, b.cfg.ClusterSecret
	}
	if b.tls.routes != nil {
		opts.Cluster.TLSConfig = b.tls.routes
		opts.Cluster.TLSTimeout = 5
	}
	for _, r := range b.cfg.Routes {
		u := server.RoutesFromStr(r)
		if len(u) == 0 {
			return fmt.Errorf("route %q is not a nats://host:port URL", r)
		}
		for _, x := range u {
			if b.cfg.ClusterSecret != "" {
				x.User = url.UserPassword(routeUser, b.cfg.ClusterSecret)
			}
			opts.Routes = append(opts.Routes, x)
		}
	}
	return nil
}

// Connect opens an in-process NATS connection with dartup's internal
// credentials, for the broker's own services and an in-process runner. A
// name starting with clientsdk.ReplyConnName gets a reply-only connection.
func (b *Broker) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(b.ns), nats.Token(b.token), nats.Name(name), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect in-process: %w", err)
	}
	return nc, nil
}

// NATSURL returns the URL clients connect to, e.g. nats://127.0.0.1:4222, or
// tls://… when the client port uses TLS.
func (b *Broker) NATSURL() string { return b.ns.ClientURL() }

// WorkerURL returns the URL this machine's workers connect to: NATSURL, with
// 127.0.0.1 for an unspecified listen host (0.0.0.0, ::), which a TLS client
// could not verify the server certificate for.
func (b *Broker) WorkerURL() string {
	u, err := url.Parse(b.ns.ClientURL())
	if err != nil {
		return b.ns.ClientURL()
	}
	if ip, err := netip.ParseAddr(u.Hostname()); u.Hostname() == "" || (err == nil && ip.IsUnspecified()) {
		u.Host = net.JoinHostPort("127.0.0.1", u.Port())
	}
	return u.String()
}

// WorkerCA returns the CA file this server's workers verify its TLS
// certificate with: the self-signed CA, else TLSConfig.CAFile, else "" (no
// TLS, or the system's CAs).
func (b *Broker) WorkerCA() string {
	switch {
	case b.tls.clients == nil:
		return ""
	case b.tls.selfSignedCA != "":
		return b.tls.selfSignedCA
	}
	return b.cfg.TLS.CAFile
}

// warnWorkerTrust warns when this server's workers, connecting to WorkerURL
// with WorkerCA, could not verify its certificate.
func (b *Broker) warnWorkerTrust() {
	if b.tls.leaf == nil {
		return
	}
	u, err := url.Parse(b.WorkerURL())
	if err != nil {
		return
	}
	opts := x509.VerifyOptions{DNSName: u.Hostname(), Intermediates: x509.NewCertPool()}
	for _, der := range b.tls.clients.Certificates[0].Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			opts.Intermediates.AddCert(c)
		}
	}
	if ca := b.WorkerCA(); ca != "" {
		if opts.Roots, err = loadCAs(ca, "--tls-ca"); err != nil {
			return
		}
	}
	if _, err := b.tls.leaf.Verify(opts); err != nil {
		b.logger.Warn("this server's workers will not trust its TLS certificate when they connect to NATS: give the CA that signed it as --tls-ca, and make the certificate name the host they connect to",
			"url", b.WorkerURL(), "ca", b.WorkerCA(), "err", err)
	}
}

// ClusterURL returns the route URL of this server (nats://host:port), or ""
// when it has no cluster address.
func (b *Broker) ClusterURL() string {
	a := b.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats://" + a.String()
}

// SelfSignedCA returns the path of the CA certificate made by
// TLSConfig.SelfSigned (clients verify the server with it), or "".
func (b *Broker) SelfSignedCA() string { return b.tls.selfSignedCA }

// HTTPURL returns the gateway's base URL (https://… with TLS), or "" when it
// is disabled.
func (b *Broker) HTTPURL() string {
	if b.gw == nil {
		return ""
	}
	if b.tls.clients != nil {
		return "https://" + b.gw.ln.Addr().String()
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
	if b.metrics != nil {
		errs = append(errs, b.metrics.stop(ctx))
	}
	if b.async != nil {
		b.async.stop()
	}
	if b.router != nil {
		b.router.stop()
	}
	if b.schedules != nil {
		b.schedules.stop()
	}
	if b.api != nil {
		errs = append(errs, b.api.stop())
	}
	if b.diskStop != nil {
		b.diskStop()
	}
	b.ledger.close()
	for _, nc := range []*nats.Conn{b.apiNC, b.replyConn(), b.nc} {
		errs = append(errs, drain(ctx, nc))
	}
	if b.leaf != nil {
		b.leaf.Close()
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

func (b *Broker) replyConn() *nats.Conn {
	if b.replies == nil {
		return nil
	}
	return b.replies.Conn()
}

// drain drains nc (nil is fine), closing it when ctx ends first.
func drain(ctx context.Context, nc *nats.Conn) error {
	if nc == nil {
		return nil
	}
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return err
	}
	for nc.IsDraining() {
		select {
		case <-ctx.Done():
			nc.Close()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// kickWorkers closes this server's connections of app's workers (their app
// was removed or re-created: their token no longer works).
func (b *Broker) kickWorkers(app string) {
	cz, err := b.ns.Connz(&server.ConnzOptions{User: workerUser(app), Limit: 1 << 20})
	if err != nil {
		return
	}
	for _, ci := range cz.Conns {
		_ = b.ns.DisconnectClientByID(ci.Cid)
	}
	if len(cz.Conns) > 0 {
		b.logger.Info("closed the connections of a removed app's workers", "app", app, "connections", len(cz.Conns))
	}
}

// ReplyPrefixes returns the extra reply prefixes this server answers on.
func (b *Broker) ReplyPrefixes() []string { return b.cfg.ReplyPrefixes }

// RefusedRequests returns how many requests the broker refused because
// their reply subject was not an inbox (control API and dartup.lambda.why.NAME).
func (b *Broker) RefusedRequests() uint64 {
	n := b.replies.Refused()
	if b.api != nil {
		n += b.api.guard.Refused()
	}
	return n
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
