package lambdas

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// Direct mode (WithFallbackConn; docs/lambdas.md, docs/protocol.md §7): a
// native worker takes its lambda's requests itself. When free it
// queue-subscribes lambda.NAME in the runners' queue group (it drains
// the subscription while a request outlives 1 ms); the Manager's own subscription of
// lambda.NAME is made through an embedded leaf-node server, and
// nats-server gives a queue message to a leaf-node member only when no
// client member is left. So a request reaches the Manager (onMsg) only
// when no worker was subscribed at that instant: it is queued, starts a
// worker, or gets 429, as without direct mode. The Manager never hands an
// event to a direct worker; each ready or done notice of one makes it
// re-publish the head of the queue to lambda.NAME, which the server gives
// to a subscribed worker or back to the Manager (then it keeps its place).
//
// A direct worker tells the Manager what it took with a took notice: the
// Manager then times the invocation (504, the worker killed) and answers
// 502 if the worker dies, as for a handed-over one. The done notice comes
// after the worker subscribed again and before its answer, so the server
// has its subscription before the caller can send the next request.
//
// The Manager's view of which workers are subscribed ("free") lags the
// server's by a notice: a request that falls to the Manager while a worker
// is free in its view is re-published at once (the worker's done notice
// may have overtaken the request on its way through the leaf server), at
// most maxBounces times; then it waits in the queue for the next notice.

// maxBounces bounds how often a request that came back is re-published
// at once to workers dartup believes free.
const maxBounces = 3

// WithFallbackConn turns direct mode on for native lambdas: nc is a
// connection to a leaf-node server of the Manager's NATS server (in the
// same account), through which the Manager subscribes native lambdas'
// lambda.NAME, so that it gets a request only when no worker is
// subscribed. nc must not be the Manager's own connection; the Manager
// does not close it.
func WithFallbackConn(nc *nats.Conn) Option {
	return func(o *options) error {
		if nc == nil {
			return errors.New("WithFallbackConn: nil connection")
		}
		o.fallback = nc
		return nil
	}
}

// directShareLocked is a direct worker's share of the queue: how many
// requests the server sent it that it may hold and run back to back while
// each is over within 1 ms. --queue over --max-workers (so that all of
// them hold no more than --queue) while f has all the workers
// --max-workers allows; none while it may start more, so that requests
// that find a worker busy reach dartup, which starts another (a lambda
// under load scales out before any worker runs requests back to back).
func (f *function) directShareLocked() int {
	if len(f.workers) < f.l.MaxWorkers {
		return 0
	}
	return f.l.Queue / max(f.l.MaxWorkers, 1)
}

// noteShareLocked tells f's direct workers their new share of the queue
// when it changes (the pool fills or stops being full; a worker that
// starts is told in its environment, and again after its ready notice).
func (f *function) noteShareLocked() {
	share := f.directShareLocked()
	if share == f.toldShare {
		return
	}
	f.toldShare = share
	for w := range f.workers {
		if w.direct.Load() {
			f.tellShareLocked(w)
		}
	}
}

// tellShareLocked sends direct worker w its share of the queue, on its
// subject. Under f.mu: a change of the pool reaches the worker after what
// was sent before it.
func (f *function) tellShareLocked(w *worker) {
	_ = f.m.nc.PublishMsg(&nats.Msg{Subject: w.native.subject,
		Header: nats.Header{clientsdk.HeaderLambdaBacklog: {strconv.Itoa(f.directShareLocked())}}})
}

// direct reports whether f's workers are offered direct mode.
func (f *function) direct() bool {
	return f.m.opts.fallback != nil && f.l.Protocol == clientsdk.ProtocolNATS
}

// directEnv is what a native worker is told in direct mode: the queue
// group, the timeout, its share of the queue (directShare), and the extra
// reply prefixes it may answer.
func (f *function) directEnv() []string {
	f.mu.Lock()
	share := f.directShareLocked()
	f.mu.Unlock()
	env := []string{clientsdk.EnvLambdaDirect + "=" + clientsdk.LambdaQueueGroup,
		clientsdk.EnvLambdaTimeoutMS + "=" + strconv.FormatInt(f.timeout().Milliseconds(), 10),
		clientsdk.EnvLambdaBacklog + "=" + strconv.Itoa(share)}
	if len(f.m.opts.replyExtra) > 0 {
		env = append(env, clientsdk.EnvLambdaReplyPrefixes+"="+strings.Join(f.m.opts.replyExtra, ","))
	}
	return env
}

// subscribeDirect subscribes f to lambda.NAME through the fallback
// connection, then waits until the Manager's server has that interest
// from the leaf server: until then a request would find no responders.
func (c *nativeControl) subscribeDirect(m *Manager, f *function) (*nats.Subscription, error) {
	fb := m.opts.fallback
	sub, err := fb.ChanQueueSubscribe(clientsdk.LambdaSubject(f.name), clientsdk.LambdaQueueGroup, c.ch)
	if err != nil {
		return nil, err
	}
	c.funcs.Store(sub, f)
	if err := awaitLeafInterest(m.nc, fb, 5*time.Second); err != nil {
		c.funcs.Delete(sub)
		_ = sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

// awaitLeafInterest returns once hub, a connection to the leaf server's
// hub, reaches a subscription made on leaf after all earlier ones: the
// leaf server sends its interest over the leaf connection in order.
func awaitLeafInterest(hub, leaf *nats.Conn, within time.Duration) error {
	probe := nats.NewInbox()
	ps, err := leaf.Subscribe(probe, func(m *nats.Msg) { _ = m.Respond(nil) })
	if err != nil {
		return err
	}
	defer func() { _ = ps.Unsubscribe() }()
	if err := leaf.Flush(); err != nil {
		return err
	}
	deadline := time.Now().Add(within)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		_, err := hub.Request(probe, nil, 100*time.Millisecond)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the leaf server's subscription did not reach the server within %s: %w", within, err)
		}
		time.Sleep(wait)
	}
}

// requeuedBack takes back a request f re-published that no worker took:
// it keeps its place at the head of the queue. It reports false for any
// other message (a token f does not know is a new request).
func (f *function) requeuedBack(msg *nats.Msg) bool {
	token := msg.Header.Get(clientsdk.HeaderRequeued)
	if token == "" {
		return false
	}
	f.mu.Lock()
	inv := f.requeued[token]
	if inv == nil {
		f.mu.Unlock()
		return false
	}
	delete(f.requeued, token)
	if f.closed {
		f.mu.Unlock()
		inv.fail(f.notHostedHere())
		return true
	}
	if f.offerLocked(inv) {
		return true
	}
	if inv.bounces >= maxBounces {
		f.suspectLocked()
	}
	f.queue = slices.Insert(f.queue, 0, inv)
	f.armPokeLocked()
	spawn := f.spawnNeededLocked()
	f.checkDrainedLocked()
	f.mu.Unlock()
	f.startWorkers(spawn)
	return true
}

// offerLocked re-publishes inv at once when a direct worker is free in
// f's view and inv did not come back maxBounces times; it unlocks f.mu
// then and reports true.
func (f *function) offerLocked(inv *invocation) bool {
	if len(f.free) == 0 || inv.bounces >= maxBounces || f.retiring {
		return false
	}
	inv.bounces++
	f.requeueLocked(inv)
	f.mu.Unlock()
	f.republish(inv)
	return true
}

// requeueLocked registers inv as re-published: its token, and a queue
// deadline when it has none yet.
func (f *function) requeueLocked(inv *invocation) {
	if inv.token == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		inv.token = hex.EncodeToString(b[:])
	}
	if f.requeued == nil {
		f.requeued = map[string]*invocation{}
	}
	f.requeued[inv.token] = inv
	if inv.queuedUntil.IsZero() {
		f.armQueueLocked(inv)
	}
}

// republish publishes inv to lambda.NAME on the Manager's own connection
// (a client's message: the server gives it to a subscribed worker, or to
// the leaf server, i.e. back to f), with the caller's reply subject and
// headers, its request id and trace hop, and its token.
func (f *function) republish(inv *invocation) {
	msg := f.requeueMsg(inv, inv.token)
	err := f.m.nc.PublishMsg(msg)
	if err == nil {
		return
	}
	f.mu.Lock()
	delete(f.requeued, inv.token)
	f.checkDrainedLocked()
	f.mu.Unlock()
	if errors.Is(err, nats.ErrMaxPayload) {
		inv.fail(f.overPayload(inv))
		return
	}
	inv.fail(clientsdk.Errorf(502, TypeNoResponse, "lambda %s: cannot pass the request on to its workers: %v", f.name, err))
}

// requeueMsg is inv as a request to lambda.NAME again; token "" leaves
// HeaderRequeued out (a request handed on to the next revision).
func (f *function) requeueMsg(inv *invocation, token string) *nats.Msg {
	h := nats.Header{}
	reply := ""
	if inv.msg != nil {
		reply = inv.msg.Reply
		for k, v := range inv.msg.Header {
			h[k] = v
		}
	}
	h[clientsdk.HeaderRequestID] = []string{inv.id}
	h[clientsdk.HeaderTraceparent] = []string{inv.tr.tc.String()}
	delete(h, clientsdk.HeaderRequeued)
	if token != "" {
		h[clientsdk.HeaderRequeued] = []string{token}
	}
	return &nats.Msg{Subject: clientsdk.LambdaSubject(f.name), Reply: reply, Header: h, Data: inv.event}
}

// handOnLocked takes what f, replaced by a new revision, still waits on
// in direct mode: its queue and its re-published requests. forward passes
// them to the new revision.
func (f *function) handOnLocked() []*invocation {
	if !f.direct() {
		return nil
	}
	out := f.queue
	f.queue = nil
	for _, inv := range f.requeued {
		if inv.token != "" {
			out = append(out, inv)
		}
	}
	f.requeued = nil
	return out
}

// forward re-publishes invs, without a token, for whoever hosts lambda.NAME
// now; they are the new revision's requests from then on (a re-published
// one may also be taken by a worker with its old token: a new invocation).
// One that cannot be published is answered 502 (its caller would otherwise
// wait for its own timeout).
func (f *function) forward(invs []*invocation) {
	for _, inv := range invs {
		wasOut := inv.token != "" // already on its way: the server has it
		if !inv.done.CompareAndSwap(false, true) {
			continue
		}
		if !wasOut {
			if err := f.m.nc.PublishMsg(f.requeueMsg(inv, "")); err != nil {
				inv.failClaimed(clientsdk.Errorf(502, TypeNoResponse, "lambda %s: cannot pass the request on to its new revision: %v", f.name, err))
				continue
			}
		}
		inv.tr.end(nil)
	}
}

// directFree handles a direct worker's ready or done notice: it is
// subscribed again; the head of the queue, if any, is re-published for it.
func (f *function) directFree(w *worker) {
	f.mu.Lock()
	if w.gone || w.stopping {
		f.mu.Unlock()
		return
	}
	w.unsubSince = time.Time{}
	orphan, first := f.backLocked(w)
	defer f.afterBack(w, orphan, first)
	if f.closed || f.retiring {
		f.stopUnwantedLocked(w)
		return
	}
	// The head of the queue goes out before a stop (keep-warm 0): on one
	// connection, so the worker has it before its Dartup-Stop and answers
	// it in its drain.
	inv := f.popQueueLocked()
	if inv != nil {
		inv.bounces = 0
		f.requeueLocked(inv)
	}
	stop := f.keepWarm() == 0
	if stop {
		w.stopping = true
	} else {
		f.parkLocked(&f.free, w)
		f.armPokeLocked()
	}
	f.mu.Unlock()
	if inv != nil {
		f.republish(inv)
	}
	if stop {
		w.closeStop()
		go w.stop(f.m.opts.stopGrace) // its Dartup-Stop after the republish
	}
}

// suspectAfter is how long a direct worker that was free in dartup's view
// while a request came back maxBounces times (so it was not subscribed)
// may stay silent before it is taken for one that never subscribes again
// and stopped. A worker that drained its subscription sends its took
// notice at once.
const suspectAfter = 2 * time.Second

// suspectLocked notes that a request came back maxBounces times: none of
// f.free was subscribed. Each such worker has suspectAfter to send a
// notice (dropUnsubscribed).
func (f *function) suspectLocked() {
	for _, w := range f.free {
		if w.unsubSince.IsZero() {
			since := time.Now()
			w.unsubSince = since
			time.AfterFunc(suspectAfter, func() { f.dropUnsubscribed(w, since) })
		}
	}
}

// dropUnsubscribed stops w when it is still free and silent since since:
// it does not take requests (a broken or hostile worker), and would keep
// requests waiting in the queue until its keep-warm. It is killed without
// waiting for a drain; the queue gets a new worker when it is gone.
func (f *function) dropUnsubscribed(w *worker, since time.Time) {
	// A took notice sent before now, still in the dispatcher's backlog,
	// clears the suspicion first.
	f.m.settle(time.Second)
	f.mu.Lock()
	if !w.unsubSince.Equal(since) || w.gone || w.stopping || !slices.Contains(f.free, w) {
		f.mu.Unlock()
		return
	}
	f.unfreeLocked(w)
	w.stopIdleTimer()
	w.stopping = true
	w.noDrain.Store(true)
	f.mu.Unlock()
	f.log.Warn("a native worker said it takes its requests itself but took none while it was free; stopped (is it subscribed to its lambda?)",
		"worker", w.id, "silent", suspectAfter)
	w.closeStop()
	go w.stop(f.m.opts.stopGrace)
}

// pokeAfter is how often the head of the queue is re-published while
// direct workers are free in f's view (armPokeLocked).
const pokeAfter = 20 * time.Millisecond

// armPokeLocked makes sure the queue moves while requests wait and direct
// workers are free in f's view. Each ready or done notice re-publishes one
// head for its worker, but in a cluster nats-server gives a client's queue
// message to a route as readily as to a local member: the head may go to
// another server (its worker or its runner takes it), and no notice of
// f's workers would come for the next one.
func (f *function) armPokeLocked() {
	if f.poking || len(f.queue) == 0 || len(f.free) == 0 || f.closed || f.retiring {
		return
	}
	f.poking = true
	time.AfterFunc(pokeAfter, f.poke)
}

// poke re-publishes the head of the queue while direct workers are free in
// f's view, and arms itself again while requests wait.
func (f *function) poke() {
	f.mu.Lock()
	f.poking = false
	if f.closed || f.retiring || len(f.free) == 0 {
		f.mu.Unlock()
		return
	}
	inv := f.popQueueLocked()
	if inv == nil {
		f.mu.Unlock()
		return
	}
	f.requeueLocked(inv)
	f.armPokeLocked()
	f.mu.Unlock()
	f.republish(inv)
}

// unfreeLocked takes w off the free list.
func (f *function) unfreeLocked(w *worker) {
	if i := slices.Index(f.free, w); i >= 0 {
		f.free = slices.Delete(f.free, i, i+1)
	}
}

// awaitDrain gives a direct worker told to stop the time to drain its
// subscription and answer what it took meanwhile (its invocation's timeout
// bounds it; the grace only when f shuts down) before it is sent SIGTERM;
// nothing for other workers.
func (w *worker) awaitDrain(p interface{ Done() <-chan struct{} }, grace time.Duration) {
	if !w.direct.Load() || w.noDrain.Load() || grace == 0 {
		return
	}
	wait := w.f.timeout() + grace
	w.f.mu.Lock()
	if w.f.closed {
		// Shutting down: its request was answered 503 already; what the
		// drain brings gets the grace only.
		wait = grace
	}
	w.f.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.Done():
	case <-t.C:
	}
}

// settle waits (up to within) until the dispatcher has handled every
// notice that reached the server before the call: a native worker that
// exits right after a notice — a direct worker's done notice (it was
// stopped), any worker's init error — must not have its caller answered
// 502 because its exit was seen first.
func (m *Manager) settle(within time.Duration) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	marker := hex.EncodeToString(b[:])
	ch := make(chan struct{})
	m.native.settles.Store(marker, ch)
	defer m.native.settles.Delete(marker)
	if err := m.nc.PublishMsg(&nats.Msg{Subject: m.native.settleSubj, Header: nats.Header{headerSettle: {marker}}}); err != nil {
		return
	}
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// headerSettle carries a settle marker.
const headerSettle = "Dartup-Settle"

// settled wakes the settle waiting for msg's marker.
func (c *nativeControl) settled(msg *nats.Msg) {
	if ch, ok := c.settles.LoadAndDelete(msg.Header.Get(headerSettle)); ok {
		close(ch.(chan struct{}))
	}
}
