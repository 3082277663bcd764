package app

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// Direct mode (clientsdk.EnvLambdaDirect, docs/protocol.md §7): the worker
// takes its lambda's requests itself. While it is free it is subscribed to
// lambda.NAME in dartup's queue group; the server gives a request to a
// subscribed worker, or to dartup when none is left.
//
// A request that is over within tookAfter costs nothing more than bare
// request-reply and a done notice: the worker stays subscribed, and its
// done notice carries what dartup records (the request id, the caller's
// reply subject and trace, the time taken). Requests the server sent it
// meanwhile (up to its share of the queue, clientsdk.EnvLambdaBacklog)
// run back to back. The records are held and sent in one notice
// (clientsdk.DoneBatchPrefix) once MaxDoneBatch are held or the oldest is
// holdFor old — and, while the worker has a share of the queue, once none
// waits (holdLocked): a done notice costs dartup's server more than the
// request itself, and a caller that calls again at once (one request at a
// time) would otherwise pay for one per request. A request that outlives
// tookAfter (or
// finds more than that share waiting) makes the worker drain its
// subscription — the server stops sending it requests, and those it sent
// meanwhile are still delivered, never dropped — and tell dartup with a
// took notice: dartup then times it (504, the worker killed) and answers
// 502 if the worker dies. Once done, the worker subscribes again (when
// nothing else waits), sends its done notice, and only then answers the
// caller — all on one connection, so that the server has the subscription
// before the caller can send its next request.
//
// (An auto-unsubscribe after one message would be atomic at the server,
// but nats.go may write the SUB and its UNSUB in two writes, and a second
// request routed between them would be dropped by the client.)

// tookAfter is how long a request may run before the worker gives up its
// subscription and tells dartup it took it (a variable for tests only).
var tookAfter = time.Millisecond

// holdFor is how long a done record may be held for a batched notice (a
// variable for tests only): dartup's stats and keep-warm lag by as much.
var holdFor = time.Millisecond

// directConf is what a direct worker is told by its environment.
type directConf struct {
	group, lambda string        // the queue group and lambda.NAME
	timeout       time.Duration // the function's timeout: each handler's deadline
	backlog       int           // requests the worker may hold besides the one it runs
	prefixes      []string      // the server's extra reply prefixes
}

// envTimeout is clientsdk.EnvLambdaTimeoutMS; without it 15 minutes
// (AWS's longest timeout).
func envTimeout() time.Duration {
	if ms, err := strconv.ParseInt(os.Getenv(clientsdk.EnvLambdaTimeoutMS), 10, 64); err == nil && ms > 0 && ms <= 24*3600*1000 {
		return time.Duration(ms) * time.Millisecond
	}
	return 15 * time.Minute
}

// envBacklog is clientsdk.EnvLambdaBacklog: 0 without it, at most
// maxShare.
func envBacklog() int { return parseShare(os.Getenv(clientsdk.EnvLambdaBacklog)) }

// parseShare reads a share of the queue (EnvLambdaBacklog,
// HeaderLambdaBacklog): 0 when it is not a number, at most maxShare.
func parseShare(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return min(n, maxShare)
}

// setShare takes dartup's new share of the queue for the worker
// (HeaderLambdaBacklog).
func (d *directWorker) setShare(s string) {
	d.mu.Lock()
	d.c.backlog = parseShare(s)
	d.mu.Unlock()
}

// subscribeEvents subscribes to the worker's subject, whose messages go
// to events. A direct worker's (d not nil) new shares of the queue
// (HeaderLambdaBacklog) are taken at once instead: dartup sends one each
// time the pool fills or stops being full, many while a request runs, and
// behind them in events (whose buffer is small: a message that finds it
// full is dropped) the Dartup-Stop would be lost, and the last share too.
func subscribeEvents(nc *nats.Conn, subject string, events chan *nats.Msg, d *directWorker) (*nats.Subscription, error) {
	if d == nil {
		return nc.ChanSubscribe(subject, events)
	}
	return nc.Subscribe(subject, func(m *nats.Msg) {
		if s := m.Header.Get(clientsdk.HeaderLambdaBacklog); s != "" && m.Header.Get(clientsdk.HeaderLambdaStop) == "" {
			d.setShare(s)
			return
		}
		select {
		case events <- m:
		default: // as nats.go does for a full channel
		}
	})
}

// envPrefixes is clientsdk.EnvLambdaReplyPrefixes.
func envPrefixes() []string {
	var out []string
	for p := range strings.SplitSeq(os.Getenv(clientsdk.EnvLambdaReplyPrefixes), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// directWorker is ServeLambda in direct mode on one connection.
type directWorker struct {
	nc      *nats.Conn
	c       directConf
	control string // the control subject
	h       func(context.Context, []byte) ([]byte, error)
	takes   chan *nats.Msg // requests, from each subscription in turn
	// journal is dartup's in-flight file (clientsdk.EnvLambdaInflight):
	// the records held and the request running are written there, so
	// that dartup can count them and answer the caller 502 if the worker
	// dies unannounced.
	journal *journal

	mu   sync.Mutex
	sub  *nats.Subscription // the current one, nil once drained
	cur  *taken             // the request running, nil between requests
	seq  uint64             // counts requests: a late timer's is not cur
	fail error              // a took notice that could not be sent
	held []heldDone         // done records of requests over within tookAfter, not sent yet
	// holdTimer sends the records held once the oldest is holdFor old
	// (sendHeld); armed by the first record held.
	holdTimer *time.Timer
	left      bool // serveLambda returned: the timer sends nothing more
	// passMu is held while requests are passed on (passOn), so that a
	// stopping worker does not close its connection under it.
	passMu sync.Mutex
}

// taken is the request a direct worker runs.
type taken struct {
	seq   uint64
	m     *nats.Msg  // the request
	inv   Invocation // what the handler is told of it
	sent  bool       // its took notice was sent
	start time.Time
	run   []byte // its line in the journal while it runs
	// journaled says run is in the journal already: a took notice past
	// tookAfter writes nothing more (nor over what the handler itself
	// may have written to the file).
	journaled bool
}

// heldDone is the record of a request over within tookAfter, held for
// the next batched done notice, and when it ended.
type heldDone struct {
	rec   clientsdk.DoneRecord
	ended time.Time
}

// takesBacklog bounds the requests a worker holds: those the server sent
// it before its unsubscription arrived.
const takesBacklog = 4096

// maxShare bounds a worker's share of the queue (envBacklog). The worker
// gives up its subscription only when it takes a request and finds more
// than its share waiting; the server goes on sending it requests until
// then, and nats.go drops one that finds takes full (a slow consumer), its
// caller left to its own timeout. The rest of takes is room for what comes
// while the worker runs one request (at most tookAfter, then it drains).
const maxShare = takesBacklog / 16

// subscribe makes the worker free: lambda.NAME, in the queue group.
func (d *directWorker) subscribe() error {
	sub, err := d.nc.ChanQueueSubscribe(d.c.lambda, d.c.group, d.takes)
	if err != nil {
		return fmt.Errorf("app: subscribe to %s in queue group %s: %w", d.c.lambda, d.c.group, err)
	}
	d.mu.Lock()
	d.sub = sub
	d.mu.Unlock()
	return nil
}

// drainLocked unsubscribes the current subscription, if any, so that the
// requests the server sent it before the unsubscription are still
// delivered.
func (d *directWorker) drainLocked() {
	if d.sub != nil {
		_ = d.sub.Drain()
		d.sub = nil
	}
}

// outlived is the timer of request seq: past tookAfter, the worker drains
// its subscription, sends the took notice (unless it did so already) and
// passes on the requests the server sent it meanwhile.
func (d *directWorker) outlived(seq uint64) {
	d.mu.Lock()
	if d.cur == nil || d.cur.seq != seq {
		d.mu.Unlock()
		return
	}
	if !d.cur.sent {
		d.tookLocked()
	}
	// Taken before cur can be nil again: stop, once its last request is
	// over, waits for this pass.
	d.passMu.Lock()
	d.mu.Unlock()
	defer d.passMu.Unlock()
	d.passOn()
}

// passOn publishes again to lambda.NAME, as the callers sent them, the
// requests the server gave the worker before its unsubscription, while it
// runs one that outlived tookAfter: the server gives each to a free worker
// or to dartup (its queue, a cold start, 429), so that a burst does not
// wait inside one busy worker, out of --max-workers, --queue and --timeout.
// The worker is not subscribed then (drained), so none comes back to it.
func (d *directWorker) passOn() {
	// The server answers this PING after the unsubscription: whatever it
	// sent the subscription before is in d.takes by then.
	_ = d.nc.Flush()
	for {
		select {
		case m := <-d.takes:
			_ = d.nc.PublishMsg(&nats.Msg{Subject: m.Subject, Reply: m.Reply, Header: m.Header, Data: m.Data})
		default:
			return
		}
	}
}

// tookLocked drains the subscription and sends cur's took notice, with
// the time since cur was taken.
func (d *directWorker) tookLocked() {
	d.drainLocked()
	// The records held go first: dartup takes a done record only from a
	// worker that runs nothing in its view. The journal keeps naming cur
	// until it is over: the took notice may die in the connection with
	// the worker, and dartup reads the line only for a worker it never
	// heard took a request.
	if batch := d.batchLocked(); batch != nil {
		if err := d.nc.PublishMsg(batch); err != nil && d.fail == nil {
			d.fail = err
		}
	}
	if !d.cur.journaled { // taken past its share, nothing held: not written yet
		d.journal.run(d.cur.run)
		d.cur.journaled = true
	}
	d.cur.sent = true
	// How long ago it was taken: dartup's record counts from then.
	took := &nats.Msg{Subject: d.control, Header: nats.Header{clientsdk.HeaderNotice: {clientsdk.NoticeTook},
		clientsdk.HeaderRequestID:     {d.cur.inv.RequestID},
		clientsdk.HeaderLambdaElapsed: {strconv.FormatInt(time.Since(d.cur.start).Microseconds(), 10)}}}
	direct(took.Header, d.cur.m, d.cur.inv)
	if err := d.nc.PublishMsg(took); err != nil && d.fail == nil {
		d.fail = err
	}
}

// stop drains the current subscription — a request the server sent it
// before the unsubscription is still delivered, never dropped — and
// answers what it brought.
func (d *directWorker) stop(ctx context.Context) error {
	d.mu.Lock()
	d.drainLocked()
	d.mu.Unlock()
	// The server answers this PING after the unsubscription: whatever it
	// sent the subscription before is in d.takes by then.
	_ = d.nc.Flush()
	for {
		select {
		case m := <-d.takes:
			if err := d.take(ctx, m, true); err != nil {
				return err
			}
		default:
			d.passMu.Lock() // a pass under way publishes what it took first
			d.passMu.Unlock()
			if len(d.takes) == 0 {
				return d.sendHeld()
			}
		}
	}
}

// take runs request m: handler, then (when it outlived tookAfter) took
// notice, subscribe again unless stopping, done notice, answer. A request
// whose reply subject the worker may not publish to is dropped unrun.
func (d *directWorker) take(ctx context.Context, m *nats.Msg, stopping bool) error {
	if m.Reply != "" && !clientsdk.IsReplySubject(m.Reply, d.c.prefixes...) {
		return nil
	}
	inv := Invocation{RequestID: m.Header.Get(clientsdk.HeaderRequestID), TraceParent: m.Header.Get(clientsdk.HeaderTraceparent),
		ClientContext: m.Header.Get(clientsdk.HeaderClientContext), CognitoIdentity: m.Header.Get(clientsdk.HeaderCognitoIdentity),
		Deadline: time.Now().Add(d.c.timeout)}
	if !clientsdk.ValidRequestID(inv.RequestID) {
		inv.RequestID = clientsdk.NewRequestID()
	}
	d.mu.Lock()
	d.seq++
	t := &taken{seq: d.seq, m: m, inv: inv, start: time.Now()}
	d.cur = t
	t.run = clientsdk.AppendInflightRun(nil, inv.RequestID, m.Reply, validTrace(inv.TraceParent), requeueToken(m))
	if len(d.takes) > d.c.backlog || stopping {
		d.tookLocked() // more than its share wait: the server must stop sending more
	} else {
		d.journal.run(t.run)
		t.journaled = true
	}
	d.mu.Unlock()
	timer := time.AfterFunc(tookAfter, func() { d.outlived(t.seq) })
	return respond(ctx, d.nc, d.control, inv, m.Reply, m.Data, d.h, func(e *clientsdk.Error) (*nats.Msg, error) {
		timer.Stop()
		ended := time.Now()
		d.mu.Lock()
		d.cur = nil
		sent, fail, free := t.sent, d.fail, d.sub == nil && !stopping && len(d.takes) == 0
		var done *nats.Msg
		if sent {
			// dartup timed it (its current request): the journal names
			// it no more once its done notice may be out.
			d.journal.run(nil)
			done = doneNotice(d.control, inv.RequestID, e)
		} else {
			// dartup never heard of it: its record goes in a batched
			// done notice, held for more (holdLocked).
			done = d.holdLocked(doneRecord(e, m, inv, ended.Sub(t.start)), ended, stopping)
		}
		d.mu.Unlock()
		if fail != nil {
			return nil, fmt.Errorf("app: tell dartup request %s was taken: %w", inv.RequestID, fail)
		}
		if free {
			return done, d.subscribe()
		}
		return done, nil
	})
}

// holdLocked holds rec, the record of a request that ended at ended, and
// returns the batched done notice to send now, or nil while fewer than
// MaxDoneBatch are held, the oldest is younger than holdFor, the worker
// is not stopping, and either requests wait or it has no share of the
// queue: holdTimer sends them then, unless a later request does first.
func (d *directWorker) holdLocked(rec clientsdk.DoneRecord, ended time.Time, stopping bool) *nats.Msg {
	d.held = append(d.held, heldDone{rec: rec, ended: ended})
	// With a share of the queue (the lambda has all its workers, dartup
	// may be queueing requests and re-publishes one on each notice), the
	// records go once none waits.
	idle := len(d.takes) == 0 && d.c.backlog > 0
	if stopping || idle || len(d.held) >= clientsdk.MaxDoneBatch || ended.Sub(d.held[0].ended) >= holdFor || !d.journal.hold(rec) {
		return d.batchLocked()
	}
	if len(d.held) == 1 {
		if d.holdTimer == nil {
			d.holdTimer = time.AfterFunc(holdFor, func() { _ = d.sendHeld() })
		} else {
			d.holdTimer.Reset(holdFor)
		}
	}
	return nil
}

// batchLocked is the done notice of the records held, which it clears
// (in the journal too: they are to be sent); nil when none is.
func (d *directWorker) batchLocked() *nats.Msg {
	if len(d.held) == 0 {
		return nil
	}
	if d.cur != nil {
		d.journal.sent(d.cur.run)
		d.cur.journaled = true
	} else {
		d.journal.sent(nil)
	}
	now := time.Now()
	var b []byte
	for _, h := range d.held {
		h.rec.Ago = now.Sub(h.ended)
		b = clientsdk.AppendDoneRecord(b, h.rec)
	}
	d.held = d.held[:0]
	return &nats.Msg{Subject: d.control, Data: b}
}

// sendHeld sends the records held now: holdFor after the first, as the
// worker stops, or as it leaves (ctx done). It publishes under mu, so
// that a took notice cannot overtake the records held before it.
func (d *directWorker) sendHeld() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.left {
		return nil
	}
	batch := d.batchLocked()
	if batch == nil {
		return nil
	}
	if err := d.nc.PublishMsg(batch); err != nil {
		return fmt.Errorf("app: tell dartup what requests were done: %w", err)
	}
	return nil
}

// leave disarms the hold timer as serveLambda returns. Records still held
// (it returned on an error, its connection perhaps gone) stay in the
// journal, where dartup counts them when the process exits: a timer that
// fired later would empty it for a notice its closed connection cannot
// send.
func (d *directWorker) leave() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.left = true
	if d.holdTimer != nil {
		d.holdTimer.Stop()
	}
}

// doneRecord is the record of request m (inv), which ran for ran, with
// outcome e (nil: a result).
func doneRecord(e *clientsdk.Error, m *nats.Msg, inv Invocation, ran time.Duration) clientsdk.DoneRecord {
	rec := clientsdk.DoneRecord{RequestID: inv.RequestID, Status: 200, Reply: m.Reply, Ran: ran,
		TraceParent: validTrace(inv.TraceParent), Requeued: requeueToken(m)}
	if e != nil {
		rec.Status, rec.ErrorType = e.Code, e.Type
	}
	return rec
}

// requeueToken is dartup's requeue token on request m (HeaderRequeued),
// "" without one or for one longer than dartup makes.
func requeueToken(m *nats.Msg) string {
	if t := m.Header.Get(clientsdk.HeaderRequeued); len(t) <= 64 {
		return t
	}
	return ""
}

// validTrace is tp when it is a valid traceparent, else "".
func validTrace(tp string) string {
	if _, ok := clientsdk.ParseTraceparent(tp); ok {
		return tp
	}
	return ""
}

// direct puts in h what dartup needs of request m: the caller's reply
// subject, its trace, dartup's requeue token, and that it was taken
// directly.
func direct(h nats.Header, m *nats.Msg, inv Invocation) {
	h[clientsdk.HeaderLambdaDirect] = []string{"1"}
	if m.Reply != "" {
		h[clientsdk.HeaderLambdaReply] = []string{m.Reply}
	}
	if tp := validTrace(inv.TraceParent); tp != "" {
		h[clientsdk.HeaderTraceparent] = []string{tp}
	}
	if t := requeueToken(m); t != "" {
		h[clientsdk.HeaderRequeued] = []string{t}
	}
}
