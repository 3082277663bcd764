package lambdas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
	"github.com/dartup/dartup/internal/replies"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// MaxResponseBytes is the largest result a function may return: AWS's 6 MiB
// payload limit plus the 100 bytes of slack the Runtime API allows. A larger
// response gets 413 on the Runtime API and Function.ResponseSizeTooLarge for
// the caller (a native worker answers so itself).
const MaxResponseBytes = clientsdk.MaxLambdaResponseBytes

// MaxEventBytes is the largest event a function is given (AWS's 6 MiB
// synchronous payload limit); a larger request is answered 413 and not run.
const MaxEventBytes = clientsdk.MaxLambdaEventBytes

// DefaultStopGrace is the time a worker gets between SIGTERM and SIGKILL when
// it is stopped because it was idle, replaced, or the Manager closes.
const DefaultStopGrace = 2 * time.Second

// Errors returned by the Manager.
var (
	// ErrClosed is returned by Deploy after Close.
	ErrClosed = errors.New("lambdas: manager closed")
	// ErrNotLambda is returned by Deploy for a spec that is not a lambda.
	ErrNotLambda = errors.New("lambdas: spec is not a lambda")
)

// Command is how to start one worker process; the runner resolves it from the
// spec (artifact path, interpreter, args, user).
type Command struct {
	// Path is the program to run.
	Path string
	// Args are its arguments (without argv[0]).
	Args []string
	// Env is the worker's environment ("K=V"), built by the runner (its own
	// credentials already left out); the Manager adds only the variables AWS
	// sets for a bootstrap, and AWS_LAMBDA_RUNTIME_API last.
	Env []string
	// Dir is the working directory, also advertised as LAMBDA_TASK_ROOT.
	Dir string
	// Credential is the user the worker runs as (nil: the runner's).
	Credential *proc.Credential
	// WorkerToken, when set, makes the NATS token of the native worker
	// with id worker (clientsdk.LambdaWorkerToken, signed by the runner):
	// it replaces the app's NATS_TOKEN in a native worker's environment.
	WorkerToken func(worker string) string
}

// Option configures a Manager.
type Option func(*options) error

type options struct {
	logger      *slog.Logger
	nodeID      string
	apiAddr     string
	status      jetstream.KeyValue
	events      func(clientsdk.Event)
	stopGrace   time.Duration
	region      string
	initTimeout time.Duration
	replyConn   *nats.Conn
	replyExtra  []string
	appLogLevel slog.Level
	tracer      trace.Tracer // WithTracerProvider; nil records no spans
	fallback    *nats.Conn   // WithFallbackConn: direct mode for native lambdas
}

// WithAppLogLevel sets the level at which workers' output lines also go to
// the manager's log (default debug; serve --log-apps: info).
func WithAppLogLevel(l slog.Level) Option {
	return func(o *options) error { o.appLogLevel = l; return nil }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithNodeID names the node in status entries and events (default: the host name).
func WithNodeID(id string) Option {
	return func(o *options) error {
		if id == "" {
			return errors.New("WithNodeID: empty node id")
		}
		o.nodeID = id
		return nil
	}
}

// WithRuntimeAPIAddr sets the loopback address of the Runtime API listener
// (default "127.0.0.1:0", a free port).
func WithRuntimeAPIAddr(addr string) Option {
	return func(o *options) error {
		if addr == "" {
			return errors.New("WithRuntimeAPIAddr: empty address")
		}
		o.apiAddr = addr
		return nil
	}
}

// WithStatusBucket makes the Manager report, per deployed lambda, this node's
// warm workers and stats in kv (clientsdk.StatusBucket) under
// clientsdk.LambdaStatusKey(app, node).
func WithStatusBucket(kv jetstream.KeyValue) Option {
	return func(o *options) error {
		o.status = kv
		return nil
	}
}

// WithEvents sets a callback receiving lifecycle events (cold-start, killed,
// crashed), which the Manager also publishes on the events stream's subjects.
// It is called from the Manager's goroutines and must not block.
func WithEvents(fn func(clientsdk.Event)) Option {
	return func(o *options) error {
		o.events = fn
		return nil
	}
}

// WithStopGrace sets the time between SIGTERM and SIGKILL when stopping a
// worker (default DefaultStopGrace).
func WithStopGrace(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return errors.New("WithStopGrace: negative duration")
		}
		o.stopGrace = d
		return nil
	}
}

// WithInitTimeout sets the time a worker gets to reach its first GET /next
// (default DefaultInitTimeout).
func WithInitTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("WithInitTimeout: duration must be positive")
		}
		o.initTimeout = d
		return nil
	}
}

// WithReplyConn sets the connection results and errors are sent on: in
// production a reply-only one (named clientsdk.ReplyConnName…), so that no
// reply subject a caller picks can make the Manager publish anywhere but an
// inbox. extra are the server's additional reply prefixes. Without it,
// replies go over the Manager's own connection; either way, requests whose
// reply subject is not an inbox are refused and counted.
func WithReplyConn(nc *nats.Conn, extra ...string) Option {
	return func(o *options) error {
		if nc == nil {
			return errors.New("WithReplyConn: nil connection")
		}
		o.replyConn, o.replyExtra = nc, extra
		return nil
	}
}

// WithRegion sets AWS_REGION for the workers (default "us-east-1"); a
// region in the spec's Env wins.
func WithRegion(r string) Option {
	return func(o *options) error {
		o.region = r
		return nil
	}
}

// Manager hosts the lambdas of one node. Its methods are safe for concurrent use.
type Manager struct {
	nc     *nats.Conn
	opts   options
	logger *slog.Logger
	api    *runtimeAPI
	rep    *reporter
	// replies answers callers, only on inbox reply subjects.
	replies *replies.Replier

	mu       sync.Mutex
	funcs    map[string]*function
	retiring map[*function]struct{}
	stats    map[string]*stats
	presence map[string]*nats.Subscription // clientsdk.LambdaHostedSubject(name)
	closed   bool

	wmu     sync.Mutex
	workers map[string]*worker // by worker secret, for the Runtime API and native notices

	native nativeControl // the inbox native workers send their notices to (native.go)
	// relayMu guards relays, the requests passed on (or parked for a
	// presence probe) whose answers are still awaited (overflow.go), their
	// events' relayBytes, and relaysClosed (Close began: no more).
	relayMu      sync.Mutex
	relays       int
	relayBytes   int64
	relaysClosed bool
	// relayWG counts those requests for Close; relayCtx ends their wait
	// once Close's grace is over (stopRelays).
	relayWG    sync.WaitGroup
	relayCtx   context.Context
	stopRelays context.CancelFunc
}

// New starts a Manager: its Runtime API listener and, with WithStatusBucket,
// its status reporter. It returns an error when an option is invalid or the
// listener cannot be opened.
func New(nc *nats.Conn, opts ...Option) (*Manager, error) {
	if nc == nil {
		return nil, errors.New("lambdas: nil NATS connection")
	}
	o := options{apiAddr: "127.0.0.1:0", stopGrace: DefaultStopGrace, region: "us-east-1", initTimeout: DefaultInitTimeout, appLogLevel: slog.LevelDebug}
	var errs []error
	for _, opt := range opts {
		errs = append(errs, opt(&o))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.nodeID == "" {
		h, _ := os.Hostname()
		o.nodeID = h
	}
	m := &Manager{
		nc:       nc,
		opts:     o,
		logger:   o.logger.With("component", "lambdas"),
		funcs:    map[string]*function{},
		retiring: map[*function]struct{}{},
		stats:    map[string]*stats{},
		presence: map[string]*nats.Subscription{},
		workers:  map[string]*worker{},
	}
	m.relayCtx, m.stopRelays = context.WithCancel(context.Background())
	rc := o.replyConn
	if rc == nil {
		rc = nc
	}
	m.replies = replies.New(rc, m.logger, o.replyExtra...)
	api, err := startRuntimeAPI(m, o.apiAddr)
	if err != nil {
		return nil, err
	}
	m.api = api
	if err := m.native.start(m); err != nil {
		_ = api.close(context.Background())
		return nil, err
	}
	if o.status != nil {
		m.rep = startReporter(m)
	}
	return m, nil
}

// RuntimeAPIAddr returns the host:port of the Runtime API listener.
func (m *Manager) RuntimeAPIAddr() string { return m.api.addr() }

// Deploy starts hosting spec (already WithDefaults()'d and Validate()'d) with
// workers started by cmd: it subscribes "lambda.NAME" in the lambda queue
// group, and answers presence probes on clientsdk.LambdaHostedSubject(NAME).
// Deploying a new spec.Revision of a hosted lambda replaces it: the old
// revision's workers finish the requests they hold, then stop. Deploying the
// same revision again does nothing. It returns ErrNotLambda, ErrClosed, or the
// subscription's error.
func (m *Manager) Deploy(spec clientsdk.AppSpec, cmd Command) error {
	if spec.Kind != clientsdk.KindLambda || spec.Lambda == nil {
		return fmt.Errorf("deploy %s: %w", spec.Name, ErrNotLambda)
	}
	if cmd.Path == "" {
		return fmt.Errorf("deploy %s: empty command path", spec.Name)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	old := m.funcs[spec.Name]
	if old != nil && old.spec.Revision == spec.Revision {
		m.mu.Unlock()
		return nil
	}
	st := m.stats[spec.Name]
	if st == nil {
		st = &stats{}
		m.stats[spec.Name] = st
	}
	f := newFunction(m, spec, cmd, st)
	var sub *nats.Subscription
	var err error
	if f.direct() {
		sub, err = m.native.subscribeDirect(m, f)
	} else if f.l.Protocol == clientsdk.ProtocolNATS {
		sub, err = m.native.subscribe(m, f) // in order with the workers' notices
	} else {
		sub, err = m.nc.QueueSubscribe(clientsdk.LambdaSubject(spec.Name), clientsdk.LambdaQueueGroup, f.onMsg)
	}
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("deploy %s: subscribe: %w", spec.Name, err)
	}
	limitPending(sub)
	if m.presence[spec.Name] == nil {
		name := spec.Name
		ps, err := m.nc.Subscribe(clientsdk.LambdaHostedSubject(name), func(msg *nats.Msg) { m.answerPresence(msg, name) })
		if err != nil {
			_ = sub.Unsubscribe()
			m.native.funcs.Delete(sub) // the dispatcher's entry, for a native lambda
			m.mu.Unlock()
			return fmt.Errorf("deploy %s: subscribe presence: %w", spec.Name, err)
		}
		m.presence[spec.Name] = ps
	}
	f.setSub(sub)
	m.funcs[spec.Name] = f
	if old != nil {
		// Stop the old revision taking requests now: its unsubscription
		// reaches the server with the flush below, so that no request sent
		// after Deploy returns lands on it.
		old.dropSub(true)
		m.retiring[old] = struct{}{}
		go func() {
			old.retire()
			m.native.forget(old)
			m.mu.Lock()
			delete(m.retiring, old)
			m.mu.Unlock()
		}()
	}
	m.logger.Info("lambda deployed", "app", spec.Name, "revision", spec.Revision, "protocol", spec.Lambda.Protocol,
		"max_workers", spec.Lambda.MaxWorkers, "queue", spec.Lambda.Queue, "timeout", spec.Lambda.Timeout.D())
	m.kick(spec.Name)
	m.mu.Unlock()
	// Make sure the server has the subscription before Deploy returns.
	if err := m.nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("deploy %s: flush subscription: %w", spec.Name, err)
	}
	return nil
}

// Undeploy stops hosting lambda name: it unsubscribes, answers the requests
// still waiting with 503, stops its workers (in-flight requests get 503 too)
// and removes its status entry. Unknown names are ignored.
func (m *Manager) Undeploy(name string) {
	m.mu.Lock()
	f := m.funcs[name]
	delete(m.funcs, name)
	delete(m.stats, name)
	if ps := m.presence[name]; ps != nil {
		_ = ps.Unsubscribe()
		delete(m.presence, name)
	}
	m.mu.Unlock()
	if f == nil {
		return
	}
	f.shutdown(context.Background(), "lambda "+name+" was removed from this node")
	m.native.forget(f)
	if m.rep != nil {
		m.rep.remove(name)
	}
	m.logger.Info("lambda undeployed", "app", name)
}

// Stats returns lambda name's stats on this node and its number of live
// workers; ok is false when name is not deployed.
func (m *Manager) Stats(name string) (clientsdk.LambdaStats, int, bool) {
	m.mu.Lock()
	f := m.funcs[name]
	st := m.stats[name]
	var retiring []*function
	for r := range m.retiring {
		if r.name == name {
			retiring = append(retiring, r)
		}
	}
	m.mu.Unlock()
	if f == nil || st == nil {
		return clientsdk.LambdaStats{}, 0, false
	}
	warm := f.liveWorkers()
	for _, r := range retiring {
		warm += r.liveWorkers()
	}
	return st.snapshot(), warm, true
}

// Close stops accepting requests and stops every worker: requests still
// waiting or in flight are answered with 503. When ctx ends first, workers
// are killed without grace. Answers to requests passed on to another node
// (overflow.go) are relayed until ctx ends; the rest are answered 503. It
// returns the Runtime API server's shutdown error.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.closeRelays()
	var fs []*function
	for _, f := range m.funcs {
		fs = append(fs, f)
	}
	for f := range m.retiring {
		fs = append(fs, f)
	}
	m.funcs = map[string]*function{}
	for _, ps := range m.presence {
		_ = ps.Unsubscribe()
	}
	m.presence = map[string]*nats.Subscription{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.shutdown(ctx, "the dartup runner is shutting down")
		}()
	}
	wg.Wait()
	m.awaitRelays(ctx)
	if m.rep != nil {
		m.rep.stop(ctx)
		for _, f := range fs {
			m.rep.remove(f.name)
		}
	}
	m.native.stop()
	return m.api.close(ctx)
}

// kick tells the status reporter that name's workers changed.
func (m *Manager) kick(name string) {
	if m.rep != nil {
		m.rep.kick(name, true)
	}
}

// kickStats tells the status reporter that f's stats changed, once until
// the reporter writes them: an invocation costs an atomic load, not the
// reporter's lock.
func (m *Manager) kickStats(f *function) {
	if m.rep != nil && !f.st.dirty.Load() && f.st.dirty.CompareAndSwap(false, true) {
		m.rep.kick(f.name, false)
	}
}

// event sends a lifecycle event to the WithEvents callback.
// event records a lifecycle event: on the events stream's subject (see
// clientsdk.EventSubject), and to the WithEvents callback.
func (m *Manager) event(app string, kind clientsdk.EventKind, instance int, format string, args ...any) {
	e := clientsdk.Event{App: app, Kind: kind, Instance: instance, Node: m.opts.nodeID,
		Message: fmt.Sprintf(format, args...), Time: time.Now().UTC()}
	b, _ := json.Marshal(e)
	_ = m.nc.Publish(clientsdk.EventSubject(app, kind), b)
	if m.opts.events != nil {
		m.opts.events(e)
	}
}

func (m *Manager) addWorker(w *worker) {
	m.wmu.Lock()
	m.workers[w.secret] = w
	m.wmu.Unlock()
}

func (m *Manager) removeWorker(w *worker) {
	m.wmu.Lock()
	delete(m.workers, w.secret)
	m.wmu.Unlock()
	if m.api != nil && w.native == nil {
		m.api.srv.dropWorker(w)
	}
}

// worker returns the worker whose Runtime API path carries secret, or nil.
func (m *Manager) worker(secret string) *worker {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.workers[secret]
}

// current returns the function deployed under name, or nil.
func (m *Manager) current(name string) *function {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.funcs[name]
}
