package broker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/loglimit"
	"github.com/nats-io/nats.go/jetstream"
)

// asyncDispatcher hands the lambdas' stored async events (DARTUP_ASYNC) to
// their warm pools, through the same "lambda.NAME" requests as synchronous
// invocations, so that the runners' queue group, limits, timeouts and stats
// apply (docs/events.md). Every server runs one, with one loop per lambda
// that is not stopped; in a cluster, the servers pull from the same durable
// consumer. It also dead-letters the events of names that are no lambda
// (sweep) and forgets a removed lambda's events.
type asyncDispatcher struct {
	b      *Broker
	stream jetstream.Stream // AsyncStream
	dlq    jetstream.Stream // DLQStream
	apps   jetstream.KeyValue
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	// sweepEvery is the period of the sweep of events for unknown names.
	sweepEvery time.Duration

	mu    sync.Mutex
	loops map[string]*asyncLoop
	wg    sync.WaitGroup
	// hosting counts the live nodes that host each lambda (refreshed by
	// watch every asyncNodesEvery).
	hosting atomic.Pointer[map[string]int]
}

// asyncNodesEvery is how often the dispatcher counts the nodes that host
// each lambda (for asyncConcurrency).
const asyncNodesEvery = 5 * time.Second

// concurrency is how many of lambda l's events this server calls at once.
func (d *asyncDispatcher) concurrency(name string, l clientsdk.LambdaSpec) int {
	nodes := 1
	if h := d.hosting.Load(); h != nil {
		nodes = (*h)[name]
	}
	return asyncConcurrency(l, nodes, 1+len(d.b.cfg.Routes))
}

// countHosting refreshes the count of nodes hosting each lambda.
func (d *asyncDispatcher) countHosting(ctx context.Context) {
	if d.b.api == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, live, err := d.b.api.nodesNow(ctx); err == nil {
		h := hostingNodes(live)
		d.hosting.Store(&h)
	}
}

// asyncSweepEvery is how often each server looks for events of names that
// are no lambda.
const asyncSweepEvery = 10 * time.Second

func startAsync(ctx context.Context, b *Broker) (*asyncDispatcher, error) {
	d := &asyncDispatcher{b: b, logger: b.logger.With("component", "async"), loops: map[string]*asyncLoop{},
		done: make(chan struct{}), sweepEvery: asyncSweepEvery}
	var err error
	if d.stream, err = b.js.Stream(ctx, clientsdk.AsyncStream); err != nil {
		return nil, err
	}
	if d.dlq, err = b.js.Stream(ctx, clientsdk.DLQStream); err != nil {
		return nil, err
	}
	if d.apps, err = b.js.KeyValue(ctx, clientsdk.AppsBucket); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := d.apps.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, err
	}
	d.cancel = cancel
	go func() {
		defer close(d.done)
		d.watch(wctx, w)
	}()
	return d, nil
}

// stop ends every loop: events in hand are given back at once, to be
// delivered again (to another server in a cluster).
func (d *asyncDispatcher) stop() {
	d.cancel()
	<-d.done
	d.mu.Lock()
	for _, l := range d.loops {
		l.cancel()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// watch follows the apps bucket: a loop per lambda that is not stopped,
// and a sweep now and then.
func (d *asyncDispatcher) watch(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	sweep := time.NewTimer(d.sweepEvery)
	defer sweep.Stop()
	nodes := time.NewTicker(asyncNodesEvery)
	defer nodes.Stop()
	d.countHosting(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-nodes.C:
			d.countHosting(ctx)
		case <-sweep.C:
			d.sweep(ctx)
			sweep.Reset(d.sweepEvery)
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				d.apply(ctx, e)
			}
		}
	}
}

// apply starts, updates or stops the loop of the app an entry is about. A
// stopped lambda keeps its consumer (its events wait); an app that is gone
// or is no lambda loses it (the sweep dead-letters what it held).
func (d *asyncDispatcher) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	name := e.Key()
	var spec *clientsdk.AppSpec
	if e.Operation() == jetstream.KeyValuePut {
		var s clientsdk.AppSpec
		if json.Unmarshal(e.Value(), &s) == nil && s.Kind == clientsdk.KindLambda && s.Lambda != nil {
			s = s.WithDefaults().Clamp()
			s.Name, s.Revision = name, e.Revision()
			spec = &s
		}
	}
	d.mu.Lock()
	l := d.loops[name]
	switch {
	case spec != nil && !spec.Stopped && l != nil:
		l.update(spec)
	case spec != nil && !spec.Stopped:
		l = newAsyncLoop(d, spec)
		d.loops[name] = l
		d.wg.Add(1)
		go func() { defer d.wg.Done(); l.run() }()
	case l != nil:
		l.cancel()
		delete(d.loops, name)
	}
	d.mu.Unlock()
	if spec == nil {
		if err := d.stream.DeleteConsumer(ctx, asyncConsumerName(name)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			d.logger.Debug("cannot delete the async consumer of an app that is no lambda", "app", name, "err", err)
		}
	}
}

// asyncLoop dispatches one lambda's events on this server.
type asyncLoop struct {
	d      *asyncDispatcher
	name   string
	spec   atomic.Pointer[clientsdk.AppSpec]
	ctx    context.Context
	cancel context.CancelFunc
	slots  slots
	// changed wakes the loop when the spec changed.
	changed chan struct{}
	// firsts holds when the first attempt of the events this server
	// retried started, by stream sequence (dead letters report it).
	firstsMu sync.Mutex
	firsts   map[uint64]time.Time
	failed   loglimit.Every
	// hostedUntil is when the last positive presence probe expires (the
	// run goroutine's own).
	hostedUntil time.Time
}

func newAsyncLoop(d *asyncDispatcher, spec *clientsdk.AppSpec) *asyncLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &asyncLoop{d: d, name: spec.Name, ctx: ctx, cancel: cancel, changed: make(chan struct{}, 1), firsts: map[uint64]time.Time{}}
	l.spec.Store(spec)
	return l
}

func (l *asyncLoop) update(spec *clientsdk.AppSpec) {
	l.spec.Store(spec)
	select {
	case l.changed <- struct{}{}:
	default:
	}
	l.slots.wake()
}

// Waits of the loop.
const (
	// asyncFetchWait bounds a wait for the next event: how soon a loop
	// notices a new spec when its lambda is idle.
	asyncFetchWait = 2 * time.Second
	// asyncIdleWait is the wait before asking again whether a runner
	// hosts the lambda.
	asyncIdleWait = 250 * time.Millisecond
	// asyncErrorWait is the first wait after a JetStream error.
	asyncErrorWait = 250 * time.Millisecond
)

// run pulls the lambda's events while a runner hosts it, each to its own
// goroutine, at most concurrency at a time, until the loop is cancelled;
// then it waits for the events in hand.
func (l *asyncLoop) run() {
	var (
		wg      sync.WaitGroup
		cons    jetstream.Consumer
		applied jetstream.ConsumerConfig
		errWait = asyncErrorWait
	)
	defer wg.Wait()
	for l.ctx.Err() == nil {
		spec := l.spec.Load()
		var err error
		if cons == nil {
			applied = asyncConsumerConfig(*spec)
			cons, err = l.ensureConsumer(applied)
		}
		if err == nil && !l.hosted() {
			l.pause(asyncIdleWait)
			continue
		}
		var it jetstream.MessagesContext
		if err == nil {
			// A pull subscription that keeps up to a window of events
			// ready: a freed slot takes the next one at once.
			it, err = cons.Messages(jetstream.PullMaxMessages(l.d.concurrency(l.name, *spec.Lambda)))
		}
		if err == nil {
			err = l.consume(it, spec, &applied, &wg)
			l.giveBack(it)
		}
		if err == nil {
			errWait = asyncErrorWait
			continue
		}
		cons = nil // made again (after a check that the lambda still exists)
		if !errors.Is(err, errNoLambda) && !errors.Is(err, jetstream.ErrConsumerDeleted) {
			l.logFailure("cannot pull async events", err)
		}
		l.pause(errWait)
		errWait = min(2*errWait, 10*time.Second)
	}
}

// consume hands it's events to handlers, one per free slot (the window may
// change as nodes come and go), until the loop ends (nil) or the pull
// fails. A new spec whose consumer settings differ updates the consumer in
// place: giving the pull's events back would count a delivery each. While
// no runner hosts the lambda it takes none (its events wait).
func (l *asyncLoop) consume(it jetstream.MessagesContext, spec *clientsdk.AppSpec, applied *jetstream.ConsumerConfig, wg *sync.WaitGroup) error {
	for l.ctx.Err() == nil {
		if s := l.spec.Load(); s != spec {
			spec = s
			if cfg := asyncConsumerConfig(*spec); cfg.AckWait != applied.AckWait || cfg.MaxAckPending != applied.MaxAckPending {
				if _, err := l.ensureConsumer(cfg); err != nil {
					return err
				}
				*applied = cfg
			}
		}
		if !l.hosted() {
			l.pause(asyncIdleWait)
			continue
		}
		if !l.slots.acquire(l.ctx, l.d.concurrency(l.name, *spec.Lambda)) {
			return nil
		}
		ctx, cancel := context.WithTimeout(l.ctx, asyncFetchWait)
		m, err := it.Next(jetstream.NextContext(ctx))
		cancel()
		if err != nil {
			l.slots.release()
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				continue // idle: look at the spec again
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer l.slots.release()
			l.handle(m)
		}()
	}
	return nil
}

// giveBack stops a pull and gives the events it holds but no handler
// took back at once, to be delivered again.
func (l *asyncLoop) giveBack(it jetstream.MessagesContext) {
	it.Drain()
	for {
		m, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			return
		}
		_ = m.Nak()
	}
}

// ensureConsumer creates or updates the lambda's durable consumer, after
// checking that the lambda still exists: a loop that has not yet seen a
// removal must not make the removed lambda's consumer again.
func (l *asyncLoop) ensureConsumer(cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	e, err := l.d.apps.Get(ctx, l.name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, errNoLambda
	}
	if err != nil {
		return nil, err
	}
	var s clientsdk.AppSpec
	if json.Unmarshal(e.Value(), &s) != nil || s.Kind != clientsdk.KindLambda {
		return nil, errNoLambda
	}
	return l.d.stream.CreateOrUpdateConsumer(ctx, cfg)
}

// errNoLambda: the loop's app was removed or is no lambda now (the
// watcher is about to stop the loop).
var errNoLambda = errors.New("the app is no lambda now")

// hosted reports whether a runner hosts the lambda: a presence probe of
// the loop's own, trusted for asyncIdleWait, never the router's cache,
// which may hold an answer from before the lambda was killed and started
// again (a request sent then would find no runner and get no answer).
func (l *asyncLoop) hosted() bool {
	if time.Now().Before(l.hostedUntil) {
		return true
	}
	ctx, cancel := context.WithTimeout(l.ctx, hostedProbeTimeout)
	defer cancel()
	if _, err := l.d.b.nc.RequestWithContext(ctx, clientsdk.LambdaHostedSubject(l.name), nil); err != nil {
		return false
	}
	l.hostedUntil = time.Now().Add(asyncIdleWait)
	return true
}

// pause waits d, or less when the spec changes or the loop ends.
func (l *asyncLoop) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.changed:
	case <-l.ctx.Done():
	}
}

// logFailure logs a failure of the loop, at most once per 10 s.
func (l *asyncLoop) logFailure(msg string, err error) {
	if l.ctx.Err() == nil && l.failed.Allow(time.Now(), 10*time.Second) {
		l.d.logger.Warn(msg, "app", l.name, "err", err)
	}
}

// slots bounds the events a loop holds; the bound may change between two
// acquisitions.
type slots struct {
	mu   sync.Mutex
	used int
	free chan struct{}
	once sync.Once
}

func (s *slots) init() { s.once.Do(func() { s.free = make(chan struct{}, 1) }) }

// acquire waits until fewer than limit slots are used and takes one;
// false when ctx ends first.
func (s *slots) acquire(ctx context.Context, limit int) bool {
	s.init()
	for {
		s.mu.Lock()
		if s.used < limit {
			s.used++
			s.mu.Unlock()
			return true
		}
		s.mu.Unlock()
		select {
		case <-s.free:
		case <-ctx.Done():
			return false
		}
	}
}

// release gives a slot back.
func (s *slots) release() {
	s.mu.Lock()
	s.used--
	s.mu.Unlock()
	s.wake()
}

func (s *slots) wake() {
	s.init()
	select {
	case s.free <- struct{}{}:
	default:
	}
}
