package lambdas

import (
	"context"
	"errors"
	"strconv"
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
// would bound the lambda. So when such a node's pool and queue are full,
// it drains its subscription (what the server sent it before still comes)
// and passes the request on: it sends it again to lambda.NAME as a request
// of its own, which the server now gives to another member (a direct
// worker, another node, serve's fallback: each queues it, starts a worker
// or answers 429), and relays the answer to the caller. When no other
// member is left (no responders) the caller gets the 429 it would have got.
// Once its queue is at most half full again, the node subscribes again. A
// request is passed on at most clientsdk.MaxPassedOn times.

// maxRelays bounds the requests one Manager has passed on and still waits
// to relay the answer of; beyond it a full pool answers 429.
const maxRelays = 1024

// overflowLocked passes inv on when f may (see above) and reports whether
// it did, with f.mu unlocked; false leaves f.mu held (the caller answers
// 429).
func (f *function) overflowLocked(inv *invocation) bool {
	if f.l.Protocol != clientsdk.ProtocolNATS || f.direct() || f.subDone ||
		inv.msg == nil || inv.msg.Reply == "" || passedOn(inv.msg) >= clientsdk.MaxPassedOn {
		return false
	}
	if f.m.relays.Add(1) > maxRelays {
		f.m.relays.Add(-1)
		return false
	}
	var drain *nats.Subscription
	if !f.overflowing && f.sub != nil {
		f.overflowing, drain = true, f.sub
	}
	f.mu.Unlock()
	if drain != nil {
		// Before the request goes out on the same connection: the server
		// has the unsubscription first, and gives the request to another.
		f.drainSub(drain)
	}
	go f.relay(inv)
	return true
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
// no other member took it.
func (f *function) relay(inv *invocation) {
	defer f.m.relays.Add(-1)
	msg := f.requeueMsg(inv, "")
	msg.Reply = ""
	msg.Header.Set(clientsdk.HeaderPassedOn, strconv.Itoa(passedOn(inv.msg)+1))
	// Another node may queue it for a timeout, then run it for one.
	ctx, cancel := context.WithTimeout(context.Background(), 2*f.timeout()+5*time.Second)
	defer cancel()
	resp, err := f.m.nc.RequestMsgWithContext(ctx, msg)
	if !inv.done.CompareAndSwap(false, true) {
		return
	}
	switch {
	case err == nil:
		if err := f.m.replies.RespondMsg(inv.msg, &nats.Msg{Header: resp.Header, Data: resp.Data}); err != nil {
			f.log.Warn("cannot relay a passed-on request's answer", "request_id", inv.id, "err", err)
		}
		inv.tr.end(clientsdk.ErrorFromMsg(resp))
	case errors.Is(err, nats.ErrNoResponders):
		inv.failClaimed(f.throttled(" on every node that hosts it"))
	default:
		inv.failClaimed(clientsdk.Errorf(504, TypeTimedOut, "lambda %s: passed on to another node (this one was full), no answer: %v", f.name, err))
	}
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
// (a timeout, a crash, keep-warm: none may be left to look) and queued
// requests time out. On an error the next call tries again.
func (f *function) resubscribeLocked() {
	if !f.overflowing || f.subDone || len(f.queue) > f.l.Queue/2 {
		return
	}
	sub, err := f.m.native.subscribe(f.m, f)
	if err != nil {
		f.log.Warn("cannot subscribe the lambda again after an overflow", "err", err)
		return
	}
	_ = sub.SetPendingLimits(-1, 512<<20)
	f.sub, f.overflowing = sub, false
}

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
