package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/loglimit"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	xrate "golang.org/x/time/rate"
)

// lambdaWhyGroup is the queue group of the brokers' subscription on
// clientsdk.LambdaWhySubject("*"): one server of a cluster answers.
const lambdaWhyGroup = "dartup-lambda-why"

// hostedProbeTimeout bounds a presence probe; a runner that is slow to
// answer it is taken as present.
const hostedProbeTimeout = time.Second

// lambdaRouter knows the apps (a watcher cache of AppsBucket) for the HTTP
// gateway, and says why a request on "lambda.NAME" found no responders (no
// runner subscribes it): 404 for an unknown name, 403 for a daemon, 503 for
// a lambda no runner hosts, 502 for one that cannot start (lambda_why.go).
// It never subscribes lambda.NAME itself: each request is delivered once,
// to a runner, and one nobody takes is refused by the server at once.
type lambdaRouter struct {
	b      *Broker
	kv     jetstream.KeyValue
	sub    *nats.Subscription
	cancel context.CancelFunc
	logger *slog.Logger
	ready  chan struct{}

	mu   sync.RWMutex
	apps map[string]clientsdk.AppSpec
	// table is the HTTP route table of apps, rebuilt on its first use
	// after a change (nil: to rebuild).
	table *routeTable
	// failedAnswers counts the answers that could not be sent;
	// failedLogged spaces the lines that say so.
	failedAnswers atomic.Int64
	failedLogged  loglimit.Every
	// causes holds why a lambda no runner hosts is not hosted (see
	// startFailure), for causeTTL: a flood of requests for it costs one
	// reading of its status per period, not one per request.
	causes map[string]cachedCause
	// missing holds names looked up in the bucket and not found, and when:
	// a flood of requests for names that do not exist costs one read per
	// name per missingTTL, not one per request.
	missing map[string]time.Time
	// presence holds the last presence probe of each lambda (hosted).
	presence map[string]presenceAt
	// lookups bounds the bucket reads for names the cache does not know
	// (missLookupRate a second): any client can ask why about any name,
	// and one reading at a time answers everyone's questions. Past it, a
	// name the cache does not know is unknown; lookupsRefused counts those
	// answered so, lookupsLogged spaces the lines that say so.
	lookups        *xrate.Limiter
	lookupsRefused atomic.Int64
	lookupsLogged  loglimit.Every
	// changed is closed, and replaced, each time an entry is applied
	// (waitApplied waits on it).
	changed chan struct{}
}

// missingTTL is how long a name found missing is not looked up again
// (a push of it is seen at once by the watcher, which clears it).
const missingTTL = time.Second

// maxMissing bounds the names remembered as missing.
const maxMissing = 10000

// missLookupRate and missLookupBurst bound the bucket reads for names the
// watch cache does not hold (a name pushed a moment ago, before the watch
// delivered it; or a name that does not exist).
const (
	missLookupRate  = 200
	missLookupBurst = 100
)

// causeTTL is how long the cause of a lambda's absence is reused.
const causeTTL = time.Second

// cachedCause is startFailure's answer for one revision of a lambda.
type cachedCause struct {
	revision uint64
	cause    string
	pending  bool
	at       time.Time
}

func startLambdaRouter(ctx context.Context, b *Broker) (*lambdaRouter, error) {
	kv, err := b.js.KeyValue(ctx, clientsdk.AppsBucket)
	if err != nil {
		return nil, fmt.Errorf("lambda router: open %s: %w", clientsdk.AppsBucket, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	r := &lambdaRouter{b: b, kv: kv, cancel: cancel, lookups: xrate.NewLimiter(missLookupRate, missLookupBurst), logger: b.logger.With("component", "lambda-router"),
		ready: make(chan struct{}), apps: map[string]clientsdk.AppSpec{}}
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("lambda router: watch %s: %w", clientsdk.AppsBucket, err)
	}
	go r.watch(wctx, w)
	r.sub, err = b.nc.QueueSubscribe(clientsdk.LambdaWhySubject("*"), lambdaWhyGroup, r.answerWhy)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("lambda router: subscribe: %w", err)
	}
	if err := b.nc.FlushTimeout(5 * time.Second); err != nil {
		r.stop()
		return nil, fmt.Errorf("lambda router: flush: %w", err)
	}
	return r, nil
}

func (r *lambdaRouter) stop() {
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
	r.cancel()
}

func (r *lambdaRouter) watch(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	readyOnce := sync.OnceFunc(func() { close(r.ready) })
	defer readyOnce()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				readyOnce()
				continue
			}
			r.apply(e)
		}
	}
}

func (r *lambdaRouter) apply(e jetstream.KeyValueEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed != nil {
		close(r.changed)
	}
	r.changed = make(chan struct{})
	r.table = nil
	delete(r.missing, e.Key())
	delete(r.presence, e.Key()) // killed, started, moved: probe again
	old, had := r.apps[e.Key()]
	if e.Operation() != jetstream.KeyValuePut {
		delete(r.apps, e.Key())
		if had {
			go r.b.kickWorkers(e.Key()) // a removed app's tokens stop working, and so do its connections
		}
		return
	}
	var s clientsdk.AppSpec
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		r.logger.Warn("unreadable app spec", "app", e.Key(), "err", err)
		return
	}
	// Clamped: a spec stored by an older dartup may hold a timeout that
	// would overflow the gateway's wait (2 × timeout + slack).
	s = s.WithDefaults().Clamp()
	s.Revision = e.Revision()
	r.apps[e.Key()] = s
	if had && old.TokenNonce != s.TokenNonce {
		go r.b.kickWorkers(e.Key())
	}
}

// routes returns the HTTP route table of the apps known now.
func (r *lambdaRouter) routes() *routeTable {
	r.mu.RLock()
	t := r.table
	r.mu.RUnlock()
	if t != nil {
		return t
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.table == nil {
		r.table = buildRoutes(r.apps)
	}
	return r.table
}

// routeConflict returns why spec's HTTP routes clash with another app's.
func (r *lambdaRouter) routeConflict(spec clientsdk.AppSpec) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return routeConflict(spec, r.apps)
}

// waitApplied waits until the cache holds app name at bucket revision rev
// or later, ctx ends, or d passes: a push that checked its routes against
// the cache makes the next push see it.
func (r *lambdaRouter) waitApplied(ctx context.Context, name string, rev uint64, d time.Duration) {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		if s, ok := r.apps[name]; ok && s.Revision >= rev {
			r.mu.Unlock()
			return
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-timeout.C:
			return
		}
	}
}

// specState is what find found out about a name.
type specState int

const (
	specFound     specState = iota
	specMissing             // not in the cache, nor in the bucket (or not a name)
	specUnchecked           // not in the cache, and over the budget to look it up
)

// spec returns the spec of app name, as find does; ok is false when it
// was not found, or not looked up (over the budget).
func (r *lambdaRouter) spec(ctx context.Context, name string) (s clientsdk.AppSpec, ok bool) {
	s, st := r.find(ctx, name, true)
	return s, st == specFound
}

// find returns the spec of app name. A name missing from the cache is
// looked up in the bucket, so that a lambda pushed a moment ago is found:
// within missLookupRate when limited (any client can make a name to look
// up), else at once.
func (r *lambdaRouter) find(ctx context.Context, name string, limited bool) (clientsdk.AppSpec, specState) {
	select {
	case <-r.ready:
	default: // only until the first listing of the bucket: no timer per call after
		t := time.NewTimer(5 * time.Second)
		select {
		case <-r.ready:
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	r.mu.RLock()
	s, ok := r.apps[name]
	missedAt, missed := r.missing[name]
	r.mu.RUnlock()
	switch {
	case ok:
		return s, specFound
	case clientsdk.ValidateName(name) != nil || (missed && time.Since(missedAt) < missingTTL):
		return s, specMissing
	case limited && !r.lookups.Allow():
		r.lookupRefused(name)
		return s, specUnchecked
	}
	e, err := r.kv.Get(ctx, name)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			r.mu.Lock()
			if r.missing == nil || len(r.missing) >= maxMissing {
				r.missing = map[string]time.Time{}
			}
			r.missing[name] = time.Now()
			r.mu.Unlock()
			return clientsdk.AppSpec{}, specMissing
		}
		return clientsdk.AppSpec{}, specUnchecked
	}
	r.apply(e)
	r.mu.RLock()
	s, ok = r.apps[name]
	r.mu.RUnlock()
	if !ok {
		return s, specMissing
	}
	return s, specFound
}

// lookupRefused logs a name the cache does not know that was not looked up
// (over missLookupRate): the first, then one line a minute with the count.
func (r *lambdaRouter) lookupRefused(name string) {
	n := r.lookupsRefused.Add(1)
	if r.lookupsLogged.Allow(time.Now(), time.Minute) {
		r.logger.Warn("too many lookups of unknown app names; answering from the cache (a client asking about many names?)",
			"app", name, "per_second", missLookupRate, "refused_total", n)
	}
}

// lambdaHTTPStatus maps an invocation error code to the gateway's HTTP status.
func lambdaHTTPStatus(code int) int {
	if code >= 400 && code <= 599 {
		return code
	}
	return 502
}
