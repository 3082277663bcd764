package lambdas

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/loglimit"
	"github.com/nats-io/nats.go"
)

// The native protocol (clientsdk.ProtocolNATS). The pool is the Runtime
// API's — idle list, queue, limits, timeouts, keep-warm, init timeout,
// stats, events — and only the hand-over differs:
//
//   - GET /next is a notice: the worker subscribes to its private subject
//     (clientsdk.LambdaWorkerSubject, which only its own token may read) and
//     sends "ready" to its control subject, the Manager's control inbox
//     followed by the worker's 128-bit secret: no other worker knows it.
//   - An invocation is one message to the worker's subject: the event, with
//     the request id, deadline, trace and the caller's reply subject in
//     headers. The worker answers the caller itself (workers may publish to
//     reply inboxes) — dartup relays nothing.
//   - POST …/response is a "done" notice with the request id and the
//     outcome: the Manager frees the worker (or hands it the next waiting
//     request) and records the invocation. A notice for any request but the
//     worker's current one is ignored and logged.
//
// Timeouts (504, worker killed), worker death (502 from the process watch)
// and throttling (429) are answered by dartup, as for the Runtime API.

// nativeWorker is what a native worker has beyond a Runtime API one.
type nativeWorker struct {
	id      string // its id in its token and subject: 32 hex digits
	subject string // clientsdk.LambdaWorkerSubject(app, id)
	control string // the Manager's control inbox + "." + the worker's secret
	// directControl, in direct mode, is the control subject on the
	// Manager's own connection, for a direct worker's notices.
	directControl string
	// inflight, in direct mode, is the worker's in-flight file
	// (clientsdk.EnvLambdaInflight); "" when it could not be made.
	inflight string
}

func newNativeWorker(f *function, secret string) *nativeWorker {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	nw := &nativeWorker{id: id, subject: clientsdk.LambdaWorkerSubject(f.name, id), control: f.m.native.inbox + "." + secret}
	if f.m.native.finbox != "" {
		// In direct mode, through the leaf server: in order with the
		// requests that fall to the Manager (a hand-over worker's done
		// notice must come before its caller's next request); a direct
		// worker's notices take the shorter way (directControl).
		nw.directControl, nw.control = nw.control, f.m.native.finbox+"."+secret
		nw.inflight = newInflightFile(f, id)
	}
	return nw
}

// nativeEnv is what a native worker is told: its subject, its control
// subject, and its own NATS token (when the runner signs tokens).
func (f *function) nativeEnv(w *worker) []string {
	env := []string{clientsdk.EnvLambdaSubject + "=" + w.native.subject, clientsdk.EnvLambdaControl + "=" + w.native.control}
	if f.cmd.WorkerToken != nil {
		env = append(env, "NATS_TOKEN="+f.cmd.WorkerToken(w.native.id))
	}
	if f.direct() {
		env = append(env, f.directEnv()...)
		env = append(env, clientsdk.EnvLambdaDirectControl+"="+w.native.directControl)
		if w.native.inflight != "" {
			env = append(env, clientsdk.EnvLambdaInflight+"="+w.native.inflight)
		}
	}
	return env
}

// passedHeaders are the caller's headers a worker is given as they came.
var passedHeaders = [...]string{HeaderClientContext, HeaderCognitoIdentity}

// deliver hands inv, just assigned to w, to the worker process.
func (w *worker) deliver(inv *invocation) {
	h := nats.Header{
		clientsdk.HeaderRequestID:   {inv.id},
		clientsdk.HeaderDeadline:    {strconv.FormatInt(inv.deadline.UnixMilli(), 10)},
		clientsdk.HeaderTraceparent: {inv.tr.tc.String()},
	}
	if inv.msg != nil {
		if inv.msg.Reply != "" {
			h[clientsdk.HeaderLambdaReply] = []string{inv.msg.Reply}
		}
		for _, k := range passedHeaders {
			if v := inv.msg.Header.Get(k); v != "" {
				h[k] = []string{v}
			}
		}
	}
	inv.tr.coldStart(w.servedNone)
	err := w.f.m.nc.PublishMsg(&nats.Msg{Subject: w.native.subject, Header: h, Data: inv.event})
	if err == nil {
		return
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		// The event with the caller's headers does not fit: nothing was
		// sent (nats.go checks the size first), so the worker, which never
		// saw it, takes the next request — a caller may not have warm
		// workers killed.
		w.f.mu.Lock()
		if w.current == inv {
			w.current = nil
		}
		w.f.mu.Unlock()
		inv.fail(w.f.overPayload(inv))
		w.f.nativeReady(w)
		return
	}
	// The event cannot reach the worker (the Manager's connection is
	// closed): the caller is told, and the worker, which holds the
	// invocation, is replaced.
	inv.fail(clientsdk.Errorf(502, TypeNoResponse, "lambda %s: cannot hand the event to its worker: %v", w.f.name, err))
	w.f.mu.Lock()
	w.stopping = true
	w.f.mu.Unlock()
	go w.kill()
}

// overPayload is the 413 of an event that, with the caller's headers, does
// not fit the Manager's NATS connection (nats.go refused it unsent).
func (f *function) overPayload(inv *invocation) *clientsdk.Error {
	return clientsdk.Errorf(413, TypeRequestTooLarge, "the event for %s (%d bytes) with the caller's headers does not fit the NATS connection's payload limit (%d bytes)",
		f.name, len(inv.event), f.m.nc.MaxPayload())
}

// tellStop asks a native worker to stop (ServeLambda returns) before it is
// sent SIGTERM; nothing for other workers.
func (w *worker) tellStop() {
	if w.native == nil {
		return
	}
	_ = w.f.m.nc.PublishMsg(&nats.Msg{Subject: w.native.subject, Header: nats.Header{clientsdk.HeaderLambdaStop: {"1"}}})
}

// nativeControl is a Manager's control inbox: one subscription on
// "_INBOX.ID.*" receives every native worker's notices, each on its
// worker's secret token.
//
// Notices and the requests of native lambdas are handled in the order they
// arrive, by one goroutine: the subscriptions share one channel, which the
// connection's reader fills in order. A worker sends its done notice before
// its answer, so the done is ahead of a request the caller sends on that
// answer, and the worker is idle again when that request is handled — with
// a handler goroutine per subscription the request could win, find no idle
// worker and start another one.
type nativeControl struct {
	inbox  string
	ch     chan *nats.Msg
	sub    *nats.Subscription
	funcs  sync.Map // *nats.Subscription of lambda.NAME → *function
	quit   chan struct{}
	logged loglimit.Every
	// settle is a subject on the inbox only the Manager knows: a message
	// there marks a point in the notices' order (direct.go settle).
	settleSubj string
	settles    sync.Map // marker → chan struct{}
	// finbox and fsub: in direct mode, the control inbox on the fallback
	// connection (nativeWorker.control).
	finbox string
	fsub   *nats.Subscription
}

// nativeBacklog bounds the messages waiting for the dispatcher; beyond it
// nats.go drops them as a slow consumer (and says so in the log).
const nativeBacklog = 1 << 16

func (c *nativeControl) start(m *Manager) error {
	c.inbox = nats.NewInbox()
	var b [16]byte
	_, _ = rand.Read(b[:])
	c.settleSubj = c.inbox + ".s" + hex.EncodeToString(b[:])
	c.ch = make(chan *nats.Msg, nativeBacklog)
	c.quit = make(chan struct{})
	sub, err := m.nc.ChanSubscribe(c.inbox+".*", c.ch)
	if err != nil {
		return fmt.Errorf("lambdas: subscribe to the native workers' control inbox: %w", err)
	}
	c.sub = sub
	if fb := m.opts.fallback; fb != nil {
		c.finbox = nats.NewInbox()
		if c.fsub, err = fb.ChanSubscribe(c.finbox+".*", c.ch); err == nil {
			err = awaitLeafInterest(m.nc, fb, 10*time.Second)
		}
		if err != nil {
			_ = sub.Unsubscribe()
			return fmt.Errorf("lambdas: subscribe to the native workers' control inbox through the leaf server: %w", err)
		}
	}
	go c.dispatch(m)
	return nil
}

func (c *nativeControl) dispatch(m *Manager) {
	for {
		select {
		case msg := <-c.ch:
			if msg.Subject == "" { // forgetSub's marker: its last message is handled
				c.funcs.Delete(msg.Sub)
				continue
			}
			if msg.Sub == c.sub || (msg.Sub == c.fsub && c.fsub != nil) {
				if msg.Subject == c.settleSubj {
					c.settled(msg)
					continue
				}
				m.onNotice(msg)
			} else if f, ok := c.funcs.Load(msg.Sub); ok {
				f.(*function).onMsg(msg)
			} else if f := m.current(strings.TrimPrefix(msg.Subject, clientsdk.LambdaPrefix+".")); f != nil && msg.Subject == clientsdk.LambdaSubject(f.name) {
				// A subscription not recorded yet (a message may come
				// before subscribe stores it) or already forgotten (a
				// replaced revision's late one): the lambda's current
				// revision takes it rather than nobody. (Rare: m.mu may be
				// held by a Deploy waiting for its leaf interest, ≤ 5 s.)
				f.onMsg(msg)
			}
		case <-c.quit:
			return
		}
	}
}

// subscribe subscribes f, a native lambda, to lambda.NAME in the queue
// group, through the dispatcher.
func (c *nativeControl) subscribe(m *Manager, f *function) (*nats.Subscription, error) {
	sub, err := m.nc.ChanQueueSubscribe(clientsdk.LambdaSubject(f.name), clientsdk.LambdaQueueGroup, c.ch)
	if err == nil {
		c.funcs.Store(sub, f)
	}
	return sub, err
}

// forget drops f's subscription once f is gone.
func (c *nativeControl) forget(f *function) {
	f.mu.Lock()
	sub := f.sub
	f.mu.Unlock()
	if sub != nil {
		c.funcs.Delete(sub)
	}
}

// forgetSub drops sub, drained for an overflow and closed, once the
// dispatcher has handled the messages it had queued before: a marker
// (a message without a subject) goes through the same channel.
func (c *nativeControl) forgetSub(sub *nats.Subscription) {
	select {
	case c.ch <- &nats.Msg{Sub: sub}:
	case <-c.quit:
	}
}

func (c *nativeControl) stop() {
	if c.fsub != nil {
		_ = c.fsub.Unsubscribe()
	}
	if c.sub != nil {
		_ = c.sub.Unsubscribe()
		close(c.quit)
	}
}

// onNotice handles a native worker's notice.
func (m *Manager) onNotice(msg *nats.Msg) {
	w := m.worker(msg.Subject[strings.LastIndexByte(msg.Subject, '.')+1:])
	if w == nil || w.native == nil {
		m.badNotice(nil, "a notice on an unknown control subject (a stopped worker's?)", msg)
		return
	}
	f := w.f
	if msg.Header == nil && clientsdk.IsDoneBatch(msg.Data) {
		m.onDoneBatch(w, msg)
		return
	}
	switch msg.Header.Get(clientsdk.HeaderNotice) {
	case clientsdk.NoticeReady:
		if f.direct() && msg.Header.Get(clientsdk.HeaderLambdaDirect) == "1" {
			f.mu.Lock()
			if !w.ready {
				w.direct.Store(true)
			}
			f.tellShareLocked(w) // its environment may be older than the pool's last change
			f.mu.Unlock()
		}
		f.nativeReady(w)
	case clientsdk.NoticeTook:
		if !w.direct.Load() {
			m.badNotice(w, "a took notice from a worker that is handed its events; ignored", msg)
			return
		}
		if err := f.took(w, msg.Header); err != nil {
			m.badNotice(w, err.Error(), msg)
		}
	case clientsdk.NoticeDone:
		inv, code := f.finish(w, msg.Header.Get(clientsdk.HeaderRequestID))
		switch {
		case code == 0:
			inv.completed(noticeOutcome(f.name, msg.Header))
		case w.direct.Load() && msg.Header.Get(clientsdk.HeaderLambdaDirect) == "1":
			if err := f.recordDirect(w, headerRecord(msg.Header), time.Now()); err != nil {
				m.badNotice(w, err.Error(), msg)
				return
			}
		default:
			m.badNotice(w, "a done notice for a request that is not the worker's current one; ignored", msg)
			return
		}
		f.nativeReady(w)
	case clientsdk.NoticeInitError:
		f.mu.Lock()
		ready := w.ready
		f.mu.Unlock()
		if ready {
			m.badNotice(w, "an init-error notice after the worker was ready; ignored", msg)
			return
		}
		e := &clientsdk.Error{Code: 500, Type: msg.Header.Get(clientsdk.HeaderErrorType), Message: "the function failed to initialize"}
		decodeFunctionError(msg.Data, e)
		if e.Type = clientsdk.CleanErrorType(e.Type); e.Type == "" {
			e.Type = "Runtime.InitError"
		}
		f.initError(w, e)
	default:
		m.badNotice(w, "a notice of no known kind; ignored", msg)
	}
}

// onDoneBatch handles a direct worker's batched done notice: the records
// of the requests it ran back to back, each over within 1 ms.
func (m *Manager) onDoneBatch(w *worker, msg *nats.Msg) {
	if !w.direct.Load() {
		m.badNotice(w, "a batched done notice from a worker that is handed its events; ignored", msg)
		return
	}
	if err := w.f.recordDirectBatch(w, msg.Data); err != nil {
		m.badNotice(w, err.Error(), msg)
		return
	}
	w.f.nativeReady(w)
}

// nativeReady is a native worker's GET /next: it gets the oldest waiting
// request, or goes on the idle list, or is stopped; a direct worker is
// free again instead (directFree).
func (f *function) nativeReady(w *worker) {
	if w.direct.Load() {
		f.directFree(w)
		return
	}
	if inv, err := f.takeNext(w); err == nil && inv != nil {
		w.deliver(inv)
	}
}

// noticeOutcome is the result a done notice reports: nil for a result,
// 413 for one over the limit, else a function error of the reported type.
func noticeOutcome(name string, h nats.Header) *clientsdk.Error {
	return statusOutcome(name, h.Get(clientsdk.HeaderLambdaStatus), h.Get(clientsdk.HeaderErrorType))
}

// statusOutcome is the result a done notice's status and error type
// report, as noticeOutcome.
func statusOutcome(name, status, errType string) *clientsdk.Error {
	switch status {
	case "200":
		return nil
	case "413":
		if errType == TypeRequestTooLarge { // a direct worker refused the event
			return clientsdk.Errorf(413, TypeRequestTooLarge, "the event for %s was over %d bytes; the worker answered 413", name, MaxEventBytes)
		}
		return clientsdk.Errorf(413, TypeTooLarge, "the response of %s was over %d bytes; the worker answered 413", name, MaxResponseBytes)
	}
	typ := clientsdk.CleanErrorType(errType)
	if typ == "" {
		typ = TypeUnhandled
	}
	return &clientsdk.Error{Code: 500, Type: typ, Message: "the function returned an error"}
}

// completed records inv, which its worker answered itself (the caller
// already has the result or the error); it sends nothing.
func (inv *invocation) completed(e *clientsdk.Error) { inv.completedAt(e, time.Now()) }

// completedAt records inv as completed, which ended at end.
func (inv *invocation) completedAt(e *clientsdk.Error, end time.Time) {
	if !inv.done.CompareAndSwap(false, true) {
		return
	}
	inv.f.st.record(end.Sub(inv.received), e)
	inv.tr.endAt(e, end)
	inv.f.m.kickStats(inv.f)
}

// badNotice logs a notice that was ignored, at most once every 10 s: a
// worker flooding forged notices must not flood the log.
func (m *Manager) badNotice(w *worker, what string, msg *nats.Msg) {
	if !m.native.logged.Allow(time.Now(), 10*time.Second) {
		return
	}
	args := []any{"notice", clip(msg.Header.Get(clientsdk.HeaderNotice)), "request_id", clip(msg.Header.Get(clientsdk.HeaderRequestID))}
	if w != nil {
		args = append(args, "app", w.f.name, "worker", w.id)
	}
	m.logger.Warn("native lambda worker: "+what, args...)
}

// clip bounds a worker-supplied value for the log.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
