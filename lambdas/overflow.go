package lambdas

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// Overflow on a node without a leaf server.
//
// `dartup serve`'s runner subscribes a native lambda's lambda.NAME through
// its leaf server (direct mode, direct.go), and nats-server gives a
// leaf-node member of a queue group a request only when no client member
// is left. A node without a leaf server — `dartup runner --server …`, or
// serve with --direct-lambdas=false — subscribes as a client member: while
// it hosts the lambda, serve's runner would get none of its requests and
// start no worker for it, and this node's --max-workers and --queue alone
// would bound the lambda. So when such a node's pool and queue are full
// and a node hosts the lambda in direct mode (its fallback is always
// subscribed: a presence probe tells, see probeDirectHost), the node
// drains its subscription (what the server sent it before still comes)
// and passes the request on: it sends it again to lambda.NAME as a request
// of its own, which the server now gives to another member (a direct
// worker, another node, serve's fallback: each queues it, starts a worker
// or answers 429), and relays the answer to the caller. Once its queue is
// at most half full again, or the direct host is gone (it asks again every
// 2 s while drained), the node subscribes again. Without a direct
// host it answers 429 as before (only client members would be left, and a
// request finding none while it is drained would get "no responders"). A
// request is passed on at most clientsdk.MaxPassedOn times.

// maxRelays bounds the requests one Manager has passed on (or holds for
// its presence probe) and still waits to relay the answer of, and
// maxRelayBytes their events' bytes (each up to 6 MiB); beyond them a full
// pool answers 429.
const (
	maxRelays     = 1024
	maxRelayBytes = 256 << 20
)

// overflowLocked passes inv on when f may (see above) and reports whether
// it did, or parked it until a presence probe says, with f.mu unlocked;
// false leaves f.mu held (the caller answers 429).
func (f *function) overflowLocked(inv *invocation) bool {
	if f.l.Protocol != clientsdk.ProtocolNATS || f.direct() || f.subDone || f.closed ||
		inv.msg == nil || inv.msg.Reply == "" || passedOn(inv.msg) >= clientsdk.MaxPassedOn {
		return false
	}
	known := time.Now().Before(f.host.until)
	if known && !f.host.direct || !f.m.acquireRelay(inv) {
		return false
	}
	if !known {
		f.host.parked = append(f.host.parked, inv)
		probe := f.startProbeLocked()
		f.mu.Unlock()
		if probe {
			go f.probeDirectHost()
		}
		return true
	}
	drain := f.startOverflowLocked()
	f.mu.Unlock()
	f.passOn(drain, inv)
	return true
}

// acquireRelay counts inv, to be passed on or parked for a probe, against
// maxRelays and maxRelayBytes, for Close to wait for (relayDone ends it);
// false when over a bound or once Close began.
func (m *Manager) acquireRelay(inv *invocation) bool {
	size := int64(len(inv.event))
	m.relayMu.Lock()
	defer m.relayMu.Unlock()
	if m.relaysClosed || m.relays >= maxRelays || m.relayBytes+size > maxRelayBytes {
		return false
	}
	m.relays++
	m.relayBytes += size
	m.relayWG.Add(1)
	return true
}

// closeRelays admits no more relays (acquireRelay), before Close waits for
// those it has (awaitRelays).
func (m *Manager) closeRelays() {
	m.relayMu.Lock()
	m.relaysClosed = true
	m.relayMu.Unlock()
}

// startProbeLocked marks f's presence probe running and reports whether
// the caller is to start it (none was).
func (f *function) startProbeLocked() bool {
	if f.host.probing {
		return false
	}
	f.host.probing = true
	return true
}

// startOverflowLocked marks f overflowing and returns its subscription to
// drain, the first time.
func (f *function) startOverflowLocked() *nats.Subscription {
	if f.overflowing || f.sub == nil || f.subDone {
		return nil
	}
	f.overflowing = true
	f.armRecheckLocked()
	return f.sub
}

// drainedRecheck is how often a node drained for an overflow asks again
// whether its direct host is still there (recheckHost).
const drainedRecheck = 2 * time.Second

// armRecheckLocked has recheckHost run drainedRecheck from now.
func (f *function) armRecheckLocked() {
	if f.host.recheck == nil {
		f.host.recheck = time.AfterFunc(drainedRecheck, f.recheckHost)
		return
	}
	f.host.recheck.Reset(drainedRecheck)
}

// recheckHost probes again while f is drained for an overflow: then no
// request reaches f, so a direct host gone meanwhile (killed, the lambda
// removed there) is noticed only by a probe — until then every caller
// would get "no responders". A "no" subscribes f again (probeDirectHost);
// a yes arms the next check.
func (f *function) recheckHost() {
	f.mu.Lock()
	probe := f.overflowing && !f.subDone && !f.closed && f.startProbeLocked()
	f.mu.Unlock()
	if probe { // else subscribed again, gone, or a probe answers anyway
		f.probeDirectHost()
	}
}

// passOn drains drain (when not nil) and then relays invs: the server has
// the unsubscription first, as both go out on the same connection, and
// gives the requests to another member.
func (f *function) passOn(drain *nats.Subscription, invs ...*invocation) {
	if drain != nil {
		f.drainSub(drain)
	}
	for _, inv := range invs {
		go f.relay(inv)
	}
}

// directHost is what a node without a leaf server knows of the lambda's
// hosts in direct mode (see above), and the requests waiting to know.
type directHost struct {
	direct  bool      // a node hosts it in direct mode
	until   time.Time // direct holds until then (zero: never probed)
	probing bool
	parked  []*invocation // submitted again once the probe says
	recheck *time.Timer   // recheckHost, while drained for an overflow
}

// Presence probe timing: how long its answer holds, yes or no; probeWait
// (nanoseconds, atomic: tests lengthen it) is how long a probe waits for a
// direct host's answer.
const (
	directHostFor = 10 * time.Second
	noDirectFor   = 2 * time.Second
)

var probeWait atomic.Int64

func init() { probeWait.Store(int64(50 * time.Millisecond)) }

// probeDirectHost asks who hosts f's lambda, then submits the parked
// requests again: the pool may have room again (its queue emptied while
// the probe waited: draining then would leave idle workers that no request
// reaches and none looks for work again), and a full one now knows whether
// to pass them on or answer 429. A replaced f passes them on to its new
// revision; a removed one answers 503.
func (f *function) probeDirectHost() {
	direct := f.m.directHostOf(f.name)
	f.mu.Lock()
	f.host.probing = false
	again := false
	if direct {
		f.host.direct, f.host.until = true, time.Now().Add(directHostFor)
		if f.overflowing && !f.subDone {
			f.armRecheckLocked()
		}
	} else {
		again = f.noDirectLocked()
	}
	parked := f.host.parked
	f.host.parked = nil
	// subDone without closed: replaced by a new revision (retire may not
	// have begun: Deploy drops the old subscription first).
	closed, replaced := f.closed, f.subDone && !f.closed
	f.mu.Unlock()
	if again {
		_ = f.m.nc.FlushTimeout(time.Second)
	}
	for _, inv := range parked {
		f.m.relayDone(inv) // parked, not relayed
	}
	if replaced {
		// Replaced meanwhile: the new revision's subscription, a client
		// member, gets them, as the callers sent them.
		f.forward(parked)
		return
	}
	for _, inv := range parked {
		if closed { // removed or shutting down meanwhile, as for its queue
			inv.fail(f.notHostedHere())
		} else {
			f.submit(inv)
		}
	}
	if len(parked) > 0 {
		f.m.kickStats(f)
	}
}

// directHostOf reports whether a node answers name's presence probe as
// hosting it in direct mode (clientsdk.HeaderLambdaDirect), within
// probeWait.
func (m *Manager) directHostOf(name string) bool {
	inbox := m.nc.NewInbox()
	sub, err := m.nc.SubscribeSync(inbox)
	if err != nil {
		return false
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := m.nc.PublishRequest(clientsdk.LambdaHostedSubject(name), inbox, nil); err != nil {
		return false
	}
	deadline := time.Now().Add(time.Duration(probeWait.Load()))
	for {
		msg, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			return false
		}
		if msg.Header.Get(clientsdk.HeaderLambdaDirect) == "1" {
			return true
		}
	}
}

// answerPresence answers a presence probe of lambda name with the node's
// id, and HeaderLambdaDirect when it hosts it in direct mode.
func (m *Manager) answerPresence(msg *nats.Msg, name string) {
	m.mu.Lock()
	f := m.funcs[name]
	m.mu.Unlock()
	reply := &nats.Msg{Data: []byte(m.opts.nodeID)}
	if f != nil && f.direct() {
		reply.Header = nats.Header{clientsdk.HeaderLambdaDirect: []string{"1"}}
	}
	_ = m.replies.RespondMsg(msg, reply)
}

// passedOn is a request's HeaderPassedOn count (0 when absent or not a
// small number).
func passedOn(msg *nats.Msg) int {
	if msg == nil || msg.Header == nil {
		return 0
	}
	n, err := strconv.Atoi(msg.Header.Get(clientsdk.HeaderPassedOn))
	if err != nil || n < 0 {
		return 0
	}
	return min(n, clientsdk.MaxPassedOn)
}

// relay sends inv again to lambda.NAME as a request of f's Manager, one
// more in HeaderPassedOn, and answers inv's caller with what comes back:
// the answer (its headers too: a function error stays one), or 429 when
// no other member took it or it cannot be sent.
func (f *function) relay(inv *invocation) {
	defer f.m.relayDone(inv)
	msg := f.requeueMsg(inv, "")
	msg.Reply = ""
	msg.Header.Set(clientsdk.HeaderPassedOn, strconv.Itoa(passedOn(inv.msg)+1))
	// Another node may queue it for a timeout, then run it for one.
	ctx, cancel := context.WithTimeout(f.m.relayCtx, 2*f.timeout()+5*time.Second)
	defer cancel()
	resp, err := f.m.nc.RequestMsgWithContext(ctx, msg)
	if !inv.done.CompareAndSwap(false, true) {
		return
	}
	switch {
	case err == nil:
		// Run and counted by the node it was passed on to, not here.
		inv.tr.end(clientsdk.ErrorFromMsg(resp))
		if err := f.m.replies.RespondMsg(inv.msg, &nats.Msg{Header: resp.Header, Data: resp.Data}); err != nil {
			f.log.Warn("cannot relay a passed-on request's answer", "request_id", inv.id, "err", err)
			inv.respondError(f.unrelayable(resp, err))
		}
	case errors.Is(err, nats.ErrNoResponders):
		f.noDirectHost()
		inv.failClaimed(f.throttled(" on every node that hosts it"))
	case errors.Is(err, nats.ErrMaxPayload): // not sent: dartup's headers made it too large
		inv.failClaimed(f.throttled("; with its caller's headers the request is too large to pass on to another node"))
	case f.m.relayCtx.Err() != nil: // Close's grace is over
		inv.failClaimed(f.unavailable("the dartup runner is shutting down; lambda " + f.name + " was passed on to another node, whose answer cannot be relayed any more; retry"))
	default:
		inv.failClaimed(clientsdk.Errorf(504, TypeTimedOut, "lambda %s: passed on to another node (this one was full), no answer: %v", f.name, err))
	}
}

// relayDone ends inv's relay in the counts (relays, relayBytes, relayWG).
func (m *Manager) relayDone(inv *invocation) {
	m.relayMu.Lock()
	m.relays--
	m.relayBytes -= int64(len(inv.event))
	m.relayMu.Unlock()
	m.relayWG.Done()
}

// awaitRelays waits, for Close, for the answers of the requests m passed
// on, and relays them; once ctx ends, the rest are answered 503 (m's
// connection is closed after Close: a later answer could not be relayed).
func (m *Manager) awaitRelays(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		m.relayWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	m.stopRelays()
	<-done
}

// unrelayable is the error a caller gets when the answer of the node its
// request was passed on to cannot be sent on (err).
func (f *function) unrelayable(resp *nats.Msg, err error) *clientsdk.Error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return f.responseTooLarge(len(resp.Data))
	}
	return clientsdk.Errorf(502, TypeNoResponse, "lambda %s: the answer of the node the request was passed on to cannot be sent on: %v", f.name, err)
}

// noDirectHost handles a passed-on request that found no other member (the
// direct host is gone): see noDirectLocked; the server has the new
// subscription before the caller gets its 429, so that its next requests
// find f rather than "no responders".
func (f *function) noDirectHost() {
	f.mu.Lock()
	again := f.noDirectLocked()
	f.mu.Unlock()
	if again {
		_ = f.m.nc.FlushTimeout(time.Second)
	}
}

// noDirectLocked takes "no" for the presence probe's answer, for
// noDirectFor, and subscribes a drained f again: only client members
// would be left, and callers would get "no responders". It reports
// whether it subscribed (the caller flushes); on an error the recheck
// tries again.
func (f *function) noDirectLocked() bool {
	f.host.direct, f.host.until = false, time.Now().Add(noDirectFor)
	if !f.overflowing || f.subDone || f.closed {
		return false
	}
	f.subscribeAgainLocked()
	if f.overflowing {
		f.armRecheckLocked()
		return false
	}
	return true
}

// drainSub drains sub, f's subscription, for an overflow, and has the
// dispatcher forget it after the last message the server sent it.
func (f *function) drainSub(sub *nats.Subscription) {
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err != nil {
		f.log.Warn("cannot drain the lambda's subscription for an overflow", "err", err)
	}
	go func() {
		select {
		case <-closed: // closed at the end of the drain
		case <-time.After(time.Minute):
		}
		f.m.native.forgetSub(sub)
	}()
}

// resubscribeLocked subscribes an overflowing f again once its queue is at
// most half full: called whenever a worker looks for work, a worker goes
// (a timeout, a crash, keep-warm: none may be left to look) and the queue's
// deadlines are checked. On an error the next call tries again.
func (f *function) resubscribeLocked() {
	if !f.overflowing || f.subDone || len(f.queue) > f.l.Queue/2 {
		return
	}
	f.subscribeAgainLocked()
}

// subscribeAgainLocked subscribes an overflowing f again; on an error it
// stays overflowing, for the next resubscribeLocked to try again.
func (f *function) subscribeAgainLocked() {
	sub, err := f.m.native.subscribe(f.m, f)
	if err != nil {
		f.log.Warn("cannot subscribe the lambda again after an overflow", "err", err)
		return
	}
	limitPending(sub)
	f.sub, f.overflowing = sub, false
}

// limitPending bounds what a lambda's subscription holds unhandled by
// bytes only (512 MiB): requests are small and many; their count is the
// queue's business.
func limitPending(sub *nats.Subscription) { _ = sub.SetPendingLimits(-1, 512<<20) }

// setSub sets f's subscription, made at its deploy.
func (f *function) setSub(sub *nats.Subscription) {
	f.mu.Lock()
	f.sub = sub
	f.mu.Unlock()
}

// dropSub ends f's subscription for good (a new revision, removal,
// shutdown): drained, or else unsubscribed at once. No overflow subscribes
// it again.
func (f *function) dropSub(drain bool) {
	f.mu.Lock()
	sub := f.sub
	f.subDone = true
	f.mu.Unlock()
	switch {
	case sub == nil:
	case drain:
		_ = sub.Drain()
	default:
		_ = sub.Unsubscribe()
	}
}

// throttled is the 429 of a full pool and queue; where says more.
func (f *function) throttled(where string) *clientsdk.Error {
	return clientsdk.Errorf(429, TypeThrottled, "lambda %s is throttled: %d workers busy and %d requests queued%s (raise --max-workers or --queue)",
		f.name, f.l.MaxWorkers, f.l.Queue, where)
}
