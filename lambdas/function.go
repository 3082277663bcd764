package lambdas

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// function is one deployed revision of a lambda: its queue and its workers.
type function struct {
	m    *Manager
	name string
	spec clientsdk.AppSpec
	l    clientsdk.LambdaSpec
	cmd  Command
	st   *stats
	log  *slog.Logger
	arn  string // its ARN for the Runtime API (Lambda-Runtime-Invoked-Function-Arn)

	mu sync.Mutex
	// sub is its subscription to lambda.NAME; overflowing says it is
	// drained for an overflow (overflow.go), subDone that it ended for good.
	sub         *nats.Subscription
	overflowing bool
	subDone     bool
	host        directHost    // on a node without a leaf server (overflow.go)
	queue       []*invocation // waiting for a worker, oldest first
	idle        []*worker     // waiting in GET /next, most recently idle last
	// free are the direct workers (direct.go) that are subscribed to
	// lambda.NAME as far as dartup knows (ready or done, no took since):
	// never handed anything, they take requests themselves.
	free []*worker
	// requeued are the waiting requests re-published to the direct
	// workers, by their HeaderRequeued token, until a took or their return.
	requeued map[string]*invocation
	// toldShare is the share of the queue direct workers were last told
	// (directShareLocked; 0 before the pool first fills).
	toldShare int
	// poking: a poke (direct.go) is armed.
	poking    bool
	workers   map[*worker]struct{}
	starting  int    // workers not yet at their first GET /next
	returning int    // workers that answered and will be back in GET /next
	slots     []bool // worker indexes in use (log subjects)
	running   int    // stdio: processes running
	stdio     map[*stdioRun]struct{}
	retiring  bool // replaced by a new revision: finish, then stop
	closed    bool // undeployed or manager closed: answer 503
	drained   chan struct{}
	drainedC  bool
	// qTimer fires when the earliest queue deadline of the waiting requests
	// may have passed (queueCheck); qArmed says it is set. One timer for
	// the queue, not one per request.
	qTimer *time.Timer
	qArmed bool
}

// newFunction makes the function of spec, with its counts and durations
// clamped into range (clientsdk.AppSpec.Clamp): a spec stored by an older
// dartup must not overflow the queue's capacity or the deadlines.
func newFunction(m *Manager, spec clientsdk.AppSpec, cmd Command, st *stats) *function {
	spec = spec.Clamp()
	return &function{
		m: m, name: spec.Name, spec: spec, l: *spec.Lambda, cmd: cmd, st: st,
		log:     m.logger.With("app", spec.Name, "revision", spec.Revision),
		arn:     "arn:aws:lambda:" + m.opts.region + ":000000000000:function:" + spec.Name,
		workers: map[*worker]struct{}{},
		stdio:   map[*stdioRun]struct{}{},
		drained: make(chan struct{}),
	}
}

func (f *function) timeout() time.Duration { return f.l.Timeout.D() }

func (f *function) keepWarm() time.Duration {
	if f.l.KeepWarm == nil {
		return clientsdk.DefaultKeepWarm
	}
	return f.l.KeepWarm.D()
}

// onMsg is the NATS handler of lambda.NAME. It never blocks: the reply is
// sent later by whoever completes the invocation.
func (f *function) onMsg(msg *nats.Msg) {
	if f.direct() && f.requeuedBack(msg) {
		return
	}
	// A request whose result would go anywhere but an inbox is refused
	// before it runs: answering it would publish with the runner's rights.
	if msg.Reply != "" && !f.m.replies.Allowed(msg) {
		f.st.refuse()
		f.m.kickStats(f)
		return
	}
	inv := &invocation{id: requestID(msg), msg: msg, event: msg.Data, received: time.Now(), f: f}
	inv.tr = f.startTrace(inv)
	if len(msg.Data) > MaxEventBytes {
		inv.event = nil
		inv.fail(clientsdk.Errorf(413, TypeRequestTooLarge, "the event for %s is %d bytes, over the payload limit of %d (6 MiB); it was not run", f.name, len(msg.Data), MaxEventBytes))
		return
	}
	f.submit(inv)
	f.m.kickStats(f) // its busy and queued figures changed
}

func (f *function) unavailable(reason string) *clientsdk.Error {
	return clientsdk.Errorf(503, TypeUnavailable, "%s", reason)
}

// notHostedHere is the 503 of a request for f once f is removed or its
// node shuts down.
func (f *function) notHostedHere() *clientsdk.Error {
	return f.unavailable("lambda " + f.name + " is not hosted here any more; retry")
}

// responseTooLarge is the 413 of a response of n bytes that this node's
// NATS connection cannot send to the caller.
func (f *function) responseTooLarge(n int) *clientsdk.Error {
	return clientsdk.Errorf(413, TypeTooLarge, "the response of %s is %d bytes, more than this NATS connection's limit of %d", f.name, n, f.m.replies.Conn().MaxPayload())
}

// submit hands inv to an idle worker, queues it (starting workers as
// needed), or answers 429 when the queue is full.
func (f *function) submit(inv *invocation) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		inv.fail(f.notHostedHere())
		return
	}
	if f.l.Protocol == clientsdk.ProtocolStdio {
		f.submitStdioLocked(inv)
		return
	}
	if f.retiring && f.direct() {
		// A request that reached the replaced revision's subscription
		// before its drain: the new revision's.
		f.mu.Unlock()
		f.forward([]*invocation{inv})
		return
	}
	if n := len(f.idle); n > 0 {
		w := f.idle[n-1]
		f.idle = f.idle[:n-1]
		f.assignLocked(w, inv)
		if w.native != nil {
			f.mu.Unlock()
			w.deliver(inv)
			return
		}
		w.assign <- inv
		f.mu.Unlock()
		return
	}
	if f.offerLocked(inv) {
		return
	}
	// Each starting worker and each worker that may still be started takes
	// one waiting request; Queue more may wait.
	capacity := f.l.Queue + f.starting + f.returning + len(f.free) + (f.l.MaxWorkers - len(f.workers))
	if len(f.queue) >= capacity {
		if f.overflowLocked(inv) {
			return
		}
		f.mu.Unlock()
		inv.fail(f.throttled(""))
		return
	}
	f.enqueueLocked(inv)
	spawn := f.spawnNeededLocked()
	f.mu.Unlock()
	f.startWorkers(spawn)
}

func (f *function) enqueueLocked(inv *invocation) {
	f.queue = append(f.queue, inv)
	f.armQueueLocked(inv)
}

// armQueueLocked gives inv, just queued, its queue deadline (Timeout from
// now), and arms the queue timer when it is not.
func (f *function) armQueueLocked(inv *invocation) {
	inv.queuedUntil = time.Now().Add(f.timeout())
	if f.qArmed {
		return // it fires for an earlier deadline, then re-arms
	}
	f.qArmed = true
	if f.qTimer == nil {
		f.qTimer = time.AfterFunc(f.timeout(), f.queueCheck)
		return
	}
	f.qTimer.Reset(f.timeout())
}

func (f *function) popQueueLocked() *invocation {
	var inv *invocation
	if len(f.queue) > 0 {
		inv = f.queue[0]
		f.queue[0] = nil
		f.queue = f.queue[1:]
	}
	f.resubscribeLocked() // a worker looks for work: there may be room again
	return inv
}

// queueCheck answers 504 to the requests that waited a whole Timeout for a
// worker, and re-arms the queue timer for the earliest deadline left.
func (f *function) queueCheck() {
	now := time.Now()
	var expired []*invocation
	var next time.Time
	f.mu.Lock()
	f.qArmed = false
	kept := f.queue[:0]
	for _, inv := range f.queue {
		if !now.Before(inv.queuedUntil) {
			expired = append(expired, inv)
			continue
		}
		kept = append(kept, inv)
		if next.IsZero() || inv.queuedUntil.Before(next) {
			next = inv.queuedUntil
		}
	}
	clear(f.queue[len(kept):])
	f.queue = kept
	var gone []*invocation
	for token, inv := range f.requeued {
		if !now.Before(inv.queuedUntil) {
			// Out of dartup's hands (re-published, not seen since): a
			// worker of another node may have taken it, so no 504 — the
			// caller's own timeout answers one that was lost.
			delete(f.requeued, token)
			gone = append(gone, inv)
		} else if next.IsZero() || inv.queuedUntil.Before(next) {
			next = inv.queuedUntil
		}
	}
	if !next.IsZero() {
		f.qArmed = true
		f.qTimer.Reset(next.Sub(now))
	}
	f.resubscribeLocked() // the queue may have room again
	f.checkDrainedLocked()
	f.mu.Unlock()
	f.forward(gone)
	for _, inv := range expired {
		inv.fail(clientsdk.Errorf(504, TypeTimedOut, "lambda %s: no worker took the request within %s", f.name, f.timeout()))
	}
}

// assignLocked makes inv w's current invocation and starts its timeout:
// w's timer, set again for each invocation (execCheck).
func (f *function) assignLocked(w *worker, inv *invocation) {
	w.stopIdleTimer()
	now := time.Now()
	inv.dispatched = now
	inv.deadline = now.Add(f.timeout())
	w.current = inv
	if w.execTimer == nil {
		w.execTimer = time.AfterFunc(f.timeout(), func() { f.execCheck(w) })
		return
	}
	w.execTimer.Reset(f.timeout())
}

// spawnNeededLocked creates the workers needed for the queued requests that
// no starting or returning worker will take, up to MaxWorkers. The caller starts them with
// startWorkers after unlocking.
func (f *function) spawnNeededLocked() []*worker {
	var out []*worker
	for !f.closed && len(f.queue) > f.starting+f.returning+len(f.free) && len(f.workers) < f.l.MaxWorkers {
		w := newWorker(f, f.takeSlotLocked())
		f.workers[w] = struct{}{}
		f.starting++
		f.m.addWorker(w)
		out = append(out, w)
	}
	if len(out) > 0 {
		f.noteShareLocked()
	}
	return out
}

func (f *function) startWorkers(ws []*worker) {
	for _, w := range ws {
		go f.startWorker(w)
	}
}

func (f *function) takeSlotLocked() int {
	for i, used := range f.slots {
		if !used {
			f.slots[i] = true
			return i
		}
	}
	f.slots = append(f.slots, true)
	return len(f.slots) - 1
}

func (f *function) freeSlotLocked(i int) {
	if i >= 0 && i < len(f.slots) {
		f.slots[i] = false
	}
}

// removeWorkerLocked forgets w (it has exited or failed to start).
func (f *function) removeWorkerLocked(w *worker) {
	if w.gone {
		return
	}
	w.gone = true
	delete(f.workers, w)
	if i := slices.Index(f.idle, w); i >= 0 {
		f.idle = slices.Delete(f.idle, i, i+1)
	}
	f.unfreeLocked(w)
	if !w.ready {
		f.starting--
	}
	w.setReturningLocked(false)
	w.stopIdleTimer()
	if w.execTimer != nil {
		w.execTimer.Stop()
	}
	f.freeSlotLocked(w.index)
	f.noteShareLocked()
	f.m.removeWorker(w)
	w.closeStop()
	close(w.goneCh)
	f.resubscribeLocked() // room again, with no worker left to look for work
	f.checkDrainedLocked()
}

func (f *function) checkDrainedLocked() {
	if (f.retiring || f.closed) && !f.drainedC && len(f.workers) == 0 && f.running == 0 && len(f.queue) == 0 && len(f.requeued) == 0 {
		f.drainedC = true
		close(f.drained)
	}
}

// liveWorkers returns the number of worker processes of this revision.
func (f *function) liveWorkers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.workers) + f.running
}

// execCheck kills w when its current invocation is past its deadline
// (Timeout); the timer may fire for one that already finished, and then
// waits for the current one's deadline.
func (f *function) execCheck(w *worker) {
	f.mu.Lock()
	inv := w.current
	if inv == nil {
		f.mu.Unlock()
		return
	}
	if left := time.Until(inv.deadline); left > 0 {
		w.execTimer.Reset(left)
		f.mu.Unlock()
		return
	}
	w.current = nil
	w.doneWithLocked(inv)
	w.stopping = true
	f.mu.Unlock()
	inv.fail(clientsdk.Errorf(504, TypeTimedOut, "Task timed out after %.2f seconds (request %s); the worker was killed", f.timeout().Seconds(), inv.id))
	f.m.event(f.name, clientsdk.EventKilled, w.index, "worker %s killed: request %s timed out after %s", w.id, inv.id, f.timeout())
	go w.kill()
}

// expire stops w when it is still idle after KeepWarm.
func (f *function) expire(w *worker) {
	f.mu.Lock()
	list := &f.idle
	if w.direct.Load() {
		list = &f.free
	}
	i := slices.Index(*list, w)
	if i < 0 || w.current != nil {
		f.mu.Unlock()
		return
	}
	if left := f.keepWarm() - time.Since(w.idleSince); left > 0 {
		w.idleTimer.Reset(left) // a late timer of an earlier idle time
		f.mu.Unlock()
		return
	}
	*list = slices.Delete(*list, i, i+1)
	w.stopping = true
	f.mu.Unlock()
	f.log.Debug("stopping idle worker", "worker", w.id, "keep_warm", f.keepWarm())
	w.closeStop()
	go w.stop(f.m.opts.stopGrace)
}

// retire stops taking requests (a new revision took over), lets the workers
// finish what they hold, then stops them. It returns once they are gone.
func (f *function) retire() {
	f.dropSub(true)
	f.mu.Lock()
	f.retiring = true
	idle := append(f.idle, f.free...)
	f.idle, f.free = nil, nil
	forward := f.handOnLocked()
	for _, w := range idle {
		w.stopIdleTimer()
		w.stopping = true
	}
	f.checkDrainedLocked()
	f.mu.Unlock()
	f.forward(forward)
	for _, w := range idle {
		w.closeStop()
		go w.stop(f.m.opts.stopGrace)
	}
	<-f.drained
	f.log.Debug("old revision drained")
}

// shutdown answers everything waiting or in flight with 503 and stops all
// workers; with ctx done, without grace.
func (f *function) shutdown(ctx context.Context, reason string) {
	f.dropSub(false)
	f.mu.Lock()
	f.closed = true
	var fail []*invocation
	fail = append(fail, f.queue...)
	f.queue = nil
	for _, inv := range f.requeued {
		fail = append(fail, inv)
	}
	f.requeued = nil
	f.free = nil
	var ws []*worker
	for w := range f.workers {
		if w.current != nil {
			fail = append(fail, w.current)
			w.doneWithLocked(w.current)
			w.current = nil
		}
		w.stopIdleTimer()
		w.stopping = true
		ws = append(ws, w)
	}
	f.idle = nil
	var runs []*stdioRun
	for r := range f.stdio {
		runs = append(runs, r)
		fail = append(fail, r.inv)
	}
	f.checkDrainedLocked()
	f.mu.Unlock()
	e := f.unavailable(reason)
	for _, inv := range fail {
		inv.fail(e)
	}
	grace := f.m.opts.stopGrace
	if ctx.Err() != nil {
		grace = 0
	}
	for _, r := range runs {
		go r.p.Kill()
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.closeStop()
			w.stop(grace)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); <-f.drained; close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, w := range ws {
			go w.kill()
		}
		<-done
	}
}
