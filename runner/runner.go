// Package runner is dartup's node agent. It registers the node with a
// heartbeat in the nodes KV, watches the desired state in the apps KV, claims
// daemon instances in the placement KV with compare-and-set, fetches artifacts
// into a local cache, and spawns and supervises the workers (restart policy,
// logs, status, events). Lambdas are handed to a LambdaHost (the lambdas
// package). A runner gets its *nats.Conn injected and never imports the
// server.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/datadir"
	"github.com/dartup/dartup/internal/loglimit"
	"github.com/dartup/dartup/internal/proc"
	"github.com/dartup/dartup/internal/replies"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LambdaHost runs lambdas on this node (a *lambdas.Manager, injected with
// WithLambdaHost by whoever owns it); without one the node hosts no lambdas.
type LambdaHost interface {
	// Deploy starts serving spec (already defaulted and validated) with cmd.
	Deploy(spec clientsdk.AppSpec, cmd lambdas.Command) error
	// Undeploy stops serving lambda name.
	Undeploy(name string)
}

// Defaults of a runner.
const (
	DefaultHeartbeat   = time.Second
	DefaultNodeTimeout = 3 * time.Second
)

type options struct {
	logger       *slog.Logger
	nodeID       string
	name         string
	dataDir      string
	natsURL      string
	workerCA     string
	labels       map[string]string
	maxInstances int
	dartAOT      string
	dart         string
	heartbeat    time.Duration
	nodeTimeout  time.Duration
	lambdas      LambdaHost
	version      string
	replyConn    *nats.Conn
	replyExtra   []string
	isolation    Isolation
	passEnv      []string
	runAs        string
	uidRange     [2]uint32
	workRoot     string
	advertise    string
	appLogLevel  slog.Level
}

// Option configures New.
type Option func(*options) error

// WithAppLogLevel sets the level at which apps' output lines also go to
// the runner's log (default debug: they are in the logs stream, and a
// chatty app must not fill the server's log; serve --log-apps: info).
func WithAppLogLevel(l slog.Level) Option {
	return func(o *options) error { o.appLogLevel = l; return nil }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.logger = l; return nil }
}

// WithNodeID sets the node's id, a NATS token; it must be stable across
// restarts of the node so that it finds its own claims again.
func WithNodeID(id string) Option {
	return func(o *options) error {
		if err := clientsdk.ValidateName(id); err != nil {
			return fmt.Errorf("node id: %w", err)
		}
		o.nodeID = id
		return nil
	}
}

// WithName sets the node's display name (default: the node id).
func WithName(n string) Option { return func(o *options) error { o.name = n; return nil } }

// WithDataDir sets where the artifact cache, working dirs and pid files live.
func WithDataDir(d string) Option { return func(o *options) error { o.dataDir = d; return nil } }

// WithNATSURL sets the URL workers get in NATS_URL.
func WithNATSURL(u string) Option { return func(o *options) error { o.natsURL = u; return nil } }

// WithWorkerTLSCA sets the PEM file of the CA that workers verify the
// server's TLS certificate with; they get its absolute path in NATS_CA (the
// variable the nats CLI reads too). "" gives them none (a server without
// TLS, or one whose certificate the system's CAs trust).
func WithWorkerTLSCA(file string) Option {
	return func(o *options) error {
		if file == "" {
			o.workerCA = ""
			return nil
		}
		abs, err := filepath.Abs(file)
		if err != nil {
			return fmt.Errorf("worker TLS CA: %w", err)
		}
		o.workerCA = abs
		return nil
	}
}

// WithLabels sets the node's labels, matched by push --constraint.
func WithLabels(l map[string]string) Option {
	return func(o *options) error { o.labels = l; return nil }
}

// WithMaxInstances bounds the daemon instances this node claims (0: no bound).
func WithMaxInstances(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return errors.New("max instances must not be negative")
		}
		o.maxInstances = n
		return nil
	}
}

// WithDartAOTRuntime sets the dartaotruntime used for aot artifacts.
func WithDartAOTRuntime(p string) Option { return func(o *options) error { o.dartAOT = p; return nil } }

// WithDart sets the dart VM used for kernel artifacts.
func WithDart(p string) Option { return func(o *options) error { o.dart = p; return nil } }

// WithTiming sets the heartbeat interval and the time after which a silent
// node counts as dead.
func WithTiming(heartbeat, nodeTimeout time.Duration) Option {
	return func(o *options) error {
		if heartbeat <= 0 || nodeTimeout < 2*heartbeat {
			return errors.New("node timeout must be at least twice the heartbeat")
		}
		o.heartbeat, o.nodeTimeout = heartbeat, nodeTimeout
		return nil
	}
}

// WithLambdaHost sets what runs lambdas on this node, typically a
// *lambdas.Manager that the caller creates and closes after Stop. Without
// it, the node hosts no lambdas.
func WithLambdaHost(h LambdaHost) Option { return func(o *options) error { o.lambdas = h; return nil } }

// WithReplyConn sets the connection the node answers requests on (drain
// requests, and its lambdas' results, errors and presence probes): a
// reply-only one, named clientsdk.ReplyConnName…, so that no reply subject a
// caller picks makes the node publish anywhere but an inbox. extra are the
// server's additional reply prefixes. Without it, answers go over the
// runner's own connection, still only to inboxes.
func WithReplyConn(nc *nats.Conn, extra ...string) Option {
	return func(o *options) error {
		if nc == nil {
			return errors.New("WithReplyConn: nil connection")
		}
		o.replyConn, o.replyExtra = nc, extra
		return nil
	}
}

// WithIsolation sets how workers are kept apart from the runner and from
// each other (default IsolationAuto): as root, each app runs as its own
// unprivileged user from uids (DefaultUIDRange when zero), or every app as
// runAs when it is set; workers never run as root.
func WithIsolation(mode Isolation, runAs string, uids [2]uint32) Option {
	return func(o *options) error {
		if _, err := ParseIsolation(string(mode)); err != nil {
			return err
		}
		if uids != ([2]uint32{}) {
			if _, err := ParseUIDRange(fmt.Sprintf("%d-%d", uids[0], uids[1])); err != nil {
				return err
			}
			o.uidRange = uids
		}
		o.isolation, o.runAs = mode, runAs
		return nil
	}
}

// WithPassEnv names variables of the runner's environment that every worker
// gets too (besides PATH, the locale and the time zone; see workerEnv).
// dartup's and NATS's own variables are refused.
func WithPassEnv(names ...string) Option {
	return func(o *options) error {
		if err := ValidatePassEnv(names); err != nil {
			return err
		}
		o.passEnv = append(o.passEnv, names...)
		return nil
	}
}

// WithWorkDir sets the root of the apps' working directories (default: the
// data dir's sibling "DATA-work"). It lies outside the data dir, so that no
// relative path from a worker reaches the node's own files.
func WithWorkDir(d string) Option { return func(o *options) error { o.workRoot = d; return nil } }

// WithAdvertise sets the host (a name or an IP) at which the servers'
// HTTP gateways reach this node's instances (default: the local address of
// the node's NATS connection).
func WithAdvertise(host string) Option {
	return func(o *options) error {
		if host != "" && (strings.ContainsAny(host, " /:\t") && net.ParseIP(host) == nil) {
			return fmt.Errorf("advertise %q: want a host name or an IP address, without a port", host)
		}
		o.advertise = host
		return nil
	}
}

// WithVersion sets the version the node reports.
func WithVersion(v string) Option { return func(o *options) error { o.version = v; return nil } }

// Runner is a node agent. Create it with New, run it with Start, stop it with Stop.
type Runner struct {
	options
	nc      *nats.Conn
	js      jetstream.JetStream
	apps    jetstream.KeyValue
	nodes   jetstream.KeyValue
	place   jetstream.KeyValue
	status  jetstream.KeyValue
	objects jetstream.ObjectStore
	cache   *cache
	pids    *pidDir
	ports   *portPool
	started time.Time

	mu             sync.Mutex
	specs          map[string]*clientsdk.AppSpec // never changed once stored: replaced
	liveNodes      map[string]nodeSeen
	claims         map[string]claim
	unclaimedSince map[string]time.Time
	instances      map[string]*instance
	stopping       map[string]bool // keys whose worker is being stopped
	deploys        *lambdaDeploys
	heartbeatOK    time.Time
	// heartbeatRev is the bucket revision of the heartbeat acked at
	// heartbeatOK.
	heartbeatRev uint64
	// heartbeatFailed is when a heartbeat last failed.
	heartbeatFailed   time.Time
	disconnectedSince time.Time
	fenced            bool
	// resync is set when this node lost its connection (even briefly): its
	// placement view may be stale until the watcher catches up, so it starts
	// and claims nothing until it has re-read its own claims from the server.
	resync     bool
	reconnects uint64 // nc.Stats().Reconnects when last checked
	draining   bool
	drainSub   *nats.Subscription

	ids     *identities      // the users workers run as
	replies *replies.Replier // answers drain requests
	lock    *os.File         // DATA/runner/lock, held while started
	// closing is set when Stop begins.
	closing atomic.Bool
	// synced counts the watchers (apps, nodes, placement) that have delivered
	// their initial values; reconciling waits for all three.
	synced atomic.Int32
	// workerSecret signs the workers' NATS tokens (nil: workers get none).
	workerSecret []byte

	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stopWG counts the instances being stopped (finishStop), which Stop
	// waits for too.
	stopWG   sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

type nodeSeen struct {
	node clientsdk.Node
	seen time.Time
}

type claim struct {
	node string
	rev  uint64
}

// New prepares a runner on nc; it opens the JetStream assets (which the
// broker creates) and fails when they are missing.
func New(ctx context.Context, nc *nats.Conn, opts ...Option) (*Runner, error) {
	o := options{heartbeat: DefaultHeartbeat, nodeTimeout: DefaultNodeTimeout, version: "dev",
		isolation: IsolationAuto, uidRange: DefaultUIDRange, appLogLevel: slog.LevelDebug}
	var errs []error
	for _, f := range opts {
		errs = append(errs, f(&o))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.nodeID == "" {
		return nil, errors.New("runner: a node id is required (WithNodeID)")
	}
	if o.name == "" {
		o.name = o.nodeID
	}
	if o.dataDir == "" {
		return nil, errors.New("runner: a data dir is required (WithDataDir)")
	}
	// Absolute: workers run in their own working dirs, and a relative artifact
	// path would be resolved against those.
	abs, err := filepath.Abs(o.dataDir)
	if err != nil {
		return nil, err
	}
	o.dataDir = abs
	if o.workRoot == "" {
		o.workRoot = abs + "-work"
	}
	if o.workRoot, err = filepath.Abs(o.workRoot); err != nil {
		return nil, err
	}
	if o.natsURL == "" {
		o.natsURL = nc.ConnectedUrlRedacted()
	}
	if o.advertise == "" {
		o.advertise = localAddress(nc)
	}
	o.logger = o.logger.With("component", "runner", "node", o.nodeID)
	r := &Runner{options: o, nc: nc, kick: make(chan struct{}, 1), ports: newPortPool(),
		specs: map[string]*clientsdk.AppSpec{}, liveNodes: map[string]nodeSeen{}, claims: map[string]claim{},
		unclaimedSince: map[string]time.Time{}, instances: map[string]*instance{}, stopping: map[string]bool{}}

	if r.js, err = jetstream.New(nc); err != nil {
		return nil, err
	}
	open := func(name string) jetstream.KeyValue {
		kv, e := r.js.KeyValue(ctx, name)
		if e != nil {
			errs = append(errs, fmt.Errorf("open %s (is this a dartup server?): %w", name, e))
		}
		return kv
	}
	r.apps, r.nodes, r.place, r.status = open(clientsdk.AppsBucket), open(clientsdk.NodesBucket), open(clientsdk.PlacementBucket), open(clientsdk.StatusBucket)
	if r.objects, err = r.js.ObjectStore(ctx, clientsdk.ArtifactsBucket); err != nil {
		errs = append(errs, fmt.Errorf("open %s: %w", clientsdk.ArtifactsBucket, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if r.cache, err = newCache(filepath.Join(o.dataDir, "cache", "artifacts"), r.objects, o.logger); err != nil {
		return nil, err
	}
	if r.pids, err = newPidDir(filepath.Join(o.dataDir, "runner", "pids")); err != nil {
		return nil, err
	}
	if r.ids, err = newIdentities(o.isolation, o.runAs, o.uidRange, filepath.Join(o.dataDir, "runner", "uids.json"), r.appGone); err != nil {
		return nil, err
	}
	if kv, err := r.js.KeyValue(ctx, clientsdk.SecretsBucket); err == nil {
		if e, err := kv.Get(ctx, clientsdk.WorkerSecretKey); err == nil {
			r.workerSecret = e.Value()
		}
	}
	if r.workerSecret == nil {
		r.logger.Warn("no worker secret on the server; workers get no NATS credentials")
	}
	rc := o.replyConn
	if rc == nil {
		rc = nc
	}
	r.replies = replies.New(rc, o.logger, o.replyExtra...)
	r.deploys = newLambdaDeploys(r.lambdas,
		func(ctx context.Context, spec clientsdk.AppSpec) (lambdas.Command, error) {
			return r.resolveCommand(ctx, spec, -1)
		},
		r.lambdaFailed, r.reapApp, r.poke)
	return r, nil
}

// NodeID returns the node's id.
func (r *Runner) NodeID() string { return r.nodeID }

// Start kills workers left over from a previous run of this node, registers
// the node, and starts watching and reconciling. It returns once the node is
// registered; errors come from the first heartbeat or the watchers.
func (r *Runner) Start(ctx context.Context) (err error) {
	lock, err := lockDir(filepath.Join(r.dataDir, "runner", "lock"))
	if err != nil {
		return err
	}
	// Workers' children that leave their process group (setsid) come back
	// to this process when their worker dies, and are swept.
	if err := proc.EnableOrphanReaper(); err != nil {
		r.logger.Warn("cannot reap workers' escaped children (PR_SET_CHILD_SUBREAPER)", "err", err)
	}
	r.lock = lock
	defer func() {
		if err != nil {
			r.lock.Close()
			r.lock = nil
		}
	}()
	if err := r.secureDirs(); err != nil {
		return err
	}
	if n := r.pids.killLeftovers() + r.killAppUsers(); n > 0 {
		r.logger.Warn("killed workers left over from a previous run", "count", n)
	}
	r.started = time.Now()
	if _, err := os.Stat(r.drainFile()); err == nil {
		r.draining = true
		r.logger.Warn("this node is draining (since before its restart); `dartup nodes undrain` makes it take work again")
	}
	sub, err := r.nc.Subscribe(clientsdk.NodeControlSubject(r.nodeID, "drain"), r.onDrain)
	if err != nil {
		return fmt.Errorf("subscribe to node control: %w", err)
	}
	r.drainSub = sub
	if err := r.register(ctx); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	watch := func(kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry, bool)) error {
		w, err := kv.WatchAll(rctx)
		if err != nil {
			return err
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer w.Stop()
			initial := true
			for {
				select {
				case <-rctx.Done():
					return
				case e, ok := <-w.Updates():
					if !ok {
						return
					}
					if e == nil {
						initial = false
						r.synced.Add(1)
						r.poke()
						continue
					}
					apply(e, initial)
					if !initial {
						r.poke()
					}
				}
			}
		}()
		return nil
	}
	errs := errors.Join(watch(r.apps, r.applyApp), watch(r.nodes, r.applyNode), watch(r.place, r.applyClaim))
	if errs != nil {
		cancel()
		r.wg.Wait()
		return errs
	}
	r.wg.Add(3)
	go r.heartbeatLoop(rctx)
	go r.reconcileLoop(rctx)
	go r.pruneLoop(rctx)
	r.logger.Info("runner started", "data", r.dataDir)
	return nil
}

// secureDirs makes the data dir private (0700: the cache, pid files and
// uid allocations are nobody else's business) and prepares the work root, and
// says once how workers run.
func (r *Runner) secureDirs() error {
	if err := datadir.Prepare(r.dataDir, datadir.Data); err != nil {
		return err
	}
	if err := prepareWorkRoot(r.workRoot, r.dataDir, !r.ids.shared); err != nil {
		return err
	}
	if r.workerCA != "" && !r.ids.shared {
		// The CA may live in the data dir (a self-signed one), which apps'
		// users cannot enter: they get a copy (a certificate is public).
		ca, err := exposeFile(r.workRoot, ".tls", r.workerCA)
		if err != nil {
			return fmt.Errorf("give apps the server's CA: %w", err)
		}
		r.workerCA = ca
	}
	if err := proc.NoNewPrivs(); err != nil {
		r.logger.Warn("workers start without no_new_privs (set-user-ID programs could raise their rights)", "err", err)
	}
	if r.ids.shared {
		r.logger.Warn("apps run as dartup's own user: they can read its data dir (the JetStream store with the worker secret, the password file) and each other's environment; run dartup as root (the systemd unit) to give each app its own user, or pass --isolation required to refuse to start like this",
			"uid", os.Geteuid(), "work", r.workRoot)
		return nil
	}
	r.logger.Info("app isolation: "+r.ids.describe(), "work", r.workRoot)
	return nil
}

// reapApp runs once this node runs nothing of app any more: it kills
// whatever still runs as app's own user (processes a worker left behind in a
// session of their own, which stopping its process group cannot reach), and,
// when the app was removed, forgets it (forgetApp).
func (r *Runner) reapApp(app string) {
	if slices.Contains(r.deploys.names(), app) {
		return
	}
	// Decided and done under r.mu: an instance of app started meanwhile is
	// either registered already (nothing is killed) or not spawned yet.
	r.mu.Lock()
	n, uid := 0, uint32(0)
	if !r.runsHereLocked(app) {
		if u, ok := r.ids.appUID(app); ok {
			uid, n = u, proc.KillUser(u)
		}
	}
	r.mu.Unlock()
	if n > 0 {
		r.logger.Warn("killed processes an app left behind when it stopped (they had left its process group)", "app", app, "uid", uid, "processes", n)
		r.event(app, clientsdk.EventKilled, -1, fmt.Sprintf("%d processes left behind killed", n))
	}
	if r.appGone(app) {
		r.forgetApp(app)
	}
}

// runsHereLocked reports whether an instance of app runs, or is being
// stopped, here. r.mu is held.
func (r *Runner) runsHereLocked(app string) bool {
	for _, in := range r.instances {
		if in.app == app {
			return true
		}
	}
	for key := range r.stopping {
		if a, _, _ := clientsdk.ParseInstanceKey(key); a == app {
			return true
		}
	}
	return false
}

// forgetApp deletes what this node kept for a removed app (its work dir and
// exposed artifacts) and gives its user id up, so that nothing of it is
// found by a later app.
func (r *Runner) forgetApp(app string) {
	for _, dir := range []string{filepath.Join(r.workRoot, app), filepath.Join(r.workRoot, ".artifacts", app)} {
		if err := removeTree(dir); err != nil {
			r.logger.Warn("could not delete a removed app's files", "app", app, "dir", dir, "err", err)
		}
	}
	r.ids.release(app)
}

// killAppUsers kills every process that runs as one of this node's per-app
// users (none of them may run anything while the node does not), and
// returns how many.
func (r *Runner) killAppUsers() int {
	n := 0
	for _, uid := range r.ids.allUIDs() {
		n += proc.KillUser(uid)
	}
	return n
}

// lambdaFailed reports a lambda that cannot be hosted here (it is tried
// again after lambdaRetry): in the log and as this node's errored status
// entry for it, which `list` shows and invocations answer with.
func (r *Runner) lambdaFailed(spec clientsdk.AppSpec, err error) {
	r.logger.Error("cannot host lambda; trying again", "app", spec.Name, "in", lambdaRetry, "err", err)
	r.putStatus(clientsdk.InstanceStatus{App: spec.Name, Instance: -1, Node: r.nodeID, State: clientsdk.StateErrored,
		LastError: err.Error(), SpecRevision: spec.Revision})
}

// appGone reports whether app no longer exists (its user id may be reused).
func (r *Runner) appGone(app string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.synced.Load() < 3 {
		return false // not a whole view yet: nothing is gone for sure
	}
	_, ok := r.specs[app]
	return !ok
}

func (r *Runner) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Runner) applyApp(e jetstream.KeyValueEntry, _ bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(r.specs, e.Key())
		return
	}
	var s clientsdk.AppSpec
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		r.logger.Error("ignoring undecodable app spec", "app", e.Key(), "err", err)
		return
	}
	spec := r.runnable(s, e.Revision())
	r.specs[e.Key()] = &spec
}

// runnable returns a stored spec as runners use it: defaulted, with its
// bucket revision, and clamped when out of bounds.
func (r *Runner) runnable(s clientsdk.AppSpec, rev uint64) clientsdk.AppSpec {
	s = s.WithDefaults()
	s.Revision = rev
	if err := s.Validate(); err != nil {
		// Stored by an older dartup, or written past the push verb: run it
		// with its numbers in range (resolveCommand refuses what clamping
		// cannot repair, with the reason in the instance's status).
		r.logger.Warn("stored app spec is out of bounds; using it clamped", "app", s.Name, "revision", s.Revision, "err", err)
		s = s.Clamp()
	}
	return s
}

func (r *Runner) applyNode(e jetstream.KeyValueEntry, initial bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(r.liveNodes, e.Key())
		return
	}
	var n clientsdk.Node
	if json.Unmarshal(e.Value(), &n) != nil {
		return
	}
	seen := time.Now()
	if initial {
		seen = e.Created()
	}
	r.liveNodes[e.Key()] = nodeSeen{node: n, seen: seen}
}

func (r *Runner) applyClaim(e jetstream.KeyValueEntry, _ bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(r.claims, e.Key())
		return
	}
	var c clientsdk.Claim
	if json.Unmarshal(e.Value(), &c) != nil {
		return
	}
	if old, ok := r.claims[e.Key()]; ok && old.rev > e.Revision() {
		return
	}
	r.claims[e.Key()] = claim{node: c.Node, rev: e.Revision()}
}

// connectedTo is the server this node talks through: its URL, or for the
// runner inside `dartup serve`, that server's own address.
func (r *Runner) connectedTo() string {
	if r.nc.Opts.InProcessServer != nil && r.natsURL != "" {
		return r.natsURL + " (in-process)"
	}
	return r.nc.ConnectedUrlRedacted()
}

func (r *Runner) node() clientsdk.Node {
	lambdaNames := r.deploys.names()
	r.mu.Lock()
	defer r.mu.Unlock()
	return clientsdk.Node{ID: r.nodeID, Name: r.name, Labels: r.labels, Address: r.natsURL, Advertise: r.advertise, Version: r.version,
		Instances: len(r.instances) + len(r.stopping), Lambdas: len(lambdaNames), LambdaNames: lambdaNames, MaxInstances: r.maxInstances, Draining: r.draining,
		Load1: loadAverage(), Started: r.started, LastSeen: time.Now().UTC(), Timeout: clientsdk.Duration(r.nodeTimeout),
		ConnectedTo: r.connectedTo()}
}

func (r *Runner) nodeEntry() []byte {
	b, _ := json.Marshal(r.node())
	return b
}

func (r *Runner) drainFile() string { return filepath.Join(r.dataDir, "runner", "draining") }

// onDrain answers a drain request: it sets or clears the draining flag (kept
// on disk across restarts), publishes a heartbeat at once so other nodes see
// it, and answers with the node's entry.
func (r *Runner) onDrain(m *nats.Msg) {
	if !r.replies.Allowed(m) {
		return // only requests that can be answered, and only to an inbox
	}
	var req struct {
		Drain *bool `json:"drain"`
	}
	if err := clientsdk.DecodeRequest(m.Data, &req); err != nil || req.Drain == nil {
		_ = r.replies.RespondError(m, clientsdk.Errorf(400, "BadRequest", "a drain request is {\"drain\": true} or {\"drain\": false}"))
		return
	}
	r.mu.Lock()
	r.draining = *req.Drain
	r.mu.Unlock()
	if *req.Drain {
		_ = os.WriteFile(r.drainFile(), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
		r.logger.Info("draining: moving daemons to other nodes and stopping lambdas")
	} else {
		_ = os.Remove(r.drainFile())
		r.logger.Info("undrained: taking work again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.nodeTimeout)
	defer cancel()
	_ = r.heartbeatOnce(ctx)
	r.poke()
	b, _ := json.Marshal(r.node())
	_ = r.replies.Respond(m, b)
}

// registerWindow bounds how long start-up waits for a cluster that elects
// leaders (a server restarted while another is down) to store the node.
const registerWindow = time.Minute

// register writes the node's first heartbeat, trying again while the
// cluster answers with transient errors (no response from the stream during
// an election), up to registerWindow.
func (r *Runner) register(ctx context.Context) error {
	deadline, wait, warned := time.Now().Add(registerWindow), 250*time.Millisecond, false
	for {
		err := r.heartbeatOnce(ctx)
		if err == nil || !clientsdk.IsTransient(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		if !warned {
			r.logger.Warn("waiting for the cluster to store this node (it is electing leaders)", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

func (r *Runner) heartbeatOnce(ctx context.Context) error {
	// A heartbeat may take up to half the node timeout: a slow server is not a lost one.
	ctx, cancel := context.WithTimeout(ctx, r.nodeTimeout/2)
	defer cancel()
	rev, err := r.nodes.Put(ctx, r.nodeID, r.nodeEntry())
	r.mu.Lock()
	if err == nil {
		r.heartbeatOK, r.heartbeatRev = time.Now(), rev
	} else {
		r.heartbeatFailed = time.Now()
	}
	r.mu.Unlock()
	return err
}

func (r *Runner) heartbeatLoop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.heartbeatOnce(ctx); err != nil && ctx.Err() == nil {
				r.logger.Warn("heartbeat failed", "err", err)
			}
			r.poke()
		}
	}
}

// Stop stops reconciling, stops every worker (SIGTERM to its group, the kill
// timeout, then SIGKILL), waits for those already being stopped, undeploys
// its lambdas, releases this node's claims so other nodes can take them at
// once, and removes the node's entry. It returns once every worker it owned
// is gone. Calling it again (or on a runner never started) returns the first
// call's result.
func (r *Runner) Stop(ctx context.Context) error {
	r.stopOnce.Do(func() { r.stopErr = r.stop(ctx) })
	return r.stopErr
}

func (r *Runner) stop(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.closing.Store(true)
	r.cancel()
	r.wg.Wait()
	if r.drainSub != nil {
		_ = r.drainSub.Unsubscribe()
	}
	r.mu.Lock()
	insts := make([]*instance, 0, len(r.instances))
	for _, in := range r.instances {
		insts = append(insts, in)
	}
	r.instances = map[string]*instance{}
	r.mu.Unlock()
	for _, in := range insts {
		in.requestStop(stopShutdown)
	}
	for _, in := range insts {
		<-in.done
	}
	r.stopWG.Wait() // instances stopped by an earlier reconcile
	var errs []error
	// Each write of the shutdown gets a short time of its own: in a cluster
	// that lost its quorum none succeeds, and none may hold the others up.
	var released sync.WaitGroup
	for _, in := range insts {
		released.Go(func() {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			r.releaseClaim(wctx, in.key)
		})
	}
	released.Wait()
	r.deploys.stop()
	r.killAppUsers() // whatever the apps left behind
	r.ids.close()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := r.nodes.Delete(dctx, r.nodeID); err != nil && !errors.Is(err, nats.ErrConnectionClosed) &&
		!errors.Is(err, nats.ErrReconnectBufExceeded) && r.nc.IsConnected() {
		errs = append(errs, err)
	}
	if r.lock != nil {
		errs = append(errs, r.lock.Close())
	}
	r.logger.Info("runner stopped")
	return errors.Join(errs...)
}

// releaseClaim deletes key's placement if this node still holds it.
func (r *Runner) releaseClaim(ctx context.Context, key string) {
	r.mu.Lock()
	c, ok := r.claims[key]
	r.mu.Unlock()
	if ok && c.node == r.nodeID {
		r.releaseClaimAt(ctx, key, c.rev)
	}
}

// releaseClaimAt deletes key's placement if it is still at revision rev (a
// claim made since is left alone); rev 0 does nothing.
func (r *Runner) releaseClaimAt(ctx context.Context, key string, rev uint64) {
	if rev == 0 {
		return
	}
	if err := r.place.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		r.logger.Debug("could not release claim", "key", key, "err", err)
	}
}

// putStatus writes an instance's status; failures are logged.
func (r *Runner) putStatus(st clientsdk.InstanceStatus) {
	st.UpdatedAt = time.Now().UTC()
	b, _ := json.Marshal(st)
	ctx, cancel := context.WithTimeout(context.Background(), r.writeTimeout())
	defer cancel()
	key := clientsdk.InstanceKey(st.App, st.Instance)
	if st.Instance < 0 {
		key = clientsdk.LambdaStatusKey(st.App, r.nodeID)
	}
	if _, err := r.status.Put(ctx, key, b); err != nil {
		r.logger.Warn("could not write status", "app", st.App, "instance", st.Instance, "err", err)
	}
}

// writeTimeout bounds a status write: 5 s, 1 s once the runner is
// stopping (when a cluster that lost its quorum would make every write of
// the shutdown wait the whole time).
func (r *Runner) writeTimeout() time.Duration {
	if r.closing.Load() {
		return time.Second
	}
	return 5 * time.Second
}

func (r *Runner) deleteStatus(app string, index int) {
	ctx, cancel := context.WithTimeout(context.Background(), r.writeTimeout())
	defer cancel()
	_ = r.status.Purge(ctx, clientsdk.InstanceKey(app, index))
}

// event publishes a lifecycle event on the events stream's subject.
func (r *Runner) event(app string, kind clientsdk.EventKind, index int, msg string) {
	b, _ := json.Marshal(clientsdk.Event{App: app, Kind: kind, Instance: index, Node: r.nodeID, Message: msg, Time: time.Now().UTC()})
	_ = r.nc.Publish(clientsdk.EventSubject(app, kind), b)
}

// publishLog sends one output line to the logs stream and the runner's log.
// The lines beyond lim's rate are dropped, and a note says how many once
// lines pass again. App output goes to the runner's own log at debug level
// only: it is in the logs stream, and a chatty app must not fill the
// server's log.
func (r *Runner) publishLog(app string, index int, stream string, line []byte, lim *loglimit.Limiter) {
	ok, note := lim.Allow(len(line), time.Now())
	subject := clientsdk.LogSubject(app, index, stream)
	if note != "" {
		_ = r.nc.Publish(subject, []byte(note))
	}
	if !ok {
		return
	}
	_ = r.nc.Publish(subject, line)
	r.logger.Log(context.Background(), r.appLogLevel, string(line), "app", app, "instance", index, "stream", stream)
}

// CachePruneInterval is how often the artifact cache drops what no app uses.
const CachePruneInterval = time.Minute

// pruneLoop keeps the artifact cache to the artifacts current specs use,
// and the status bucket to the instances this node has: 5 s after start,
// then every CachePruneInterval.
func (r *Runner) pruneLoop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTimer(5 * time.Second) // soon after start: a restart follows the faults that leave stale state
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(CachePruneInterval)
		if r.synced.Load() < 3 {
			t.Reset(5 * time.Second)
			continue
		}
		keep := map[string]bool{}
		r.mu.Lock()
		for _, s := range r.specs {
			if s.Artifact != nil {
				keep[s.Artifact.SHA256] = true
			}
		}
		r.mu.Unlock()
		if n := r.cache.prune(keep); n > 0 {
			r.logger.Info("artifact cache pruned", "removed", n)
		}
		r.pruneStatuses(ctx)
	}
}

// pruneStatuses deletes this node's status entries of apps it no longer
// has: a removal whose server died half-way left them, and `list`,
// `nodes` and `kill` would count instances that do not exist.
func (r *Runner) pruneStatuses(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := r.status.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return
	}
	defer func() { _ = w.Stop() }()
	var stale []string
	for e := range w.Updates() {
		if e == nil {
			break
		}
		var st clientsdk.InstanceStatus
		if json.Unmarshal(e.Value(), &st) != nil || st.Node != r.nodeID {
			continue
		}
		r.mu.Lock()
		_, known := r.specs[st.App]
		_, running := r.instances[e.Key()]
		r.mu.Unlock()
		if !known && !running {
			stale = append(stale, e.Key())
		}
	}
	for _, k := range stale {
		if err := r.status.Purge(ctx, k); err == nil {
			r.logger.Info("deleted the status of an app this node no longer has", "key", k)
		}
	}
}
