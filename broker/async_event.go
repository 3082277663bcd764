package broker

import (
	"context"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// asyncProgressEvery is how often a delivery that waits for a worker tells
// JetStream it is still being worked on.
const asyncProgressEvery = 5 * time.Second

// handle runs one delivery of an event: it calls the lambda until the call
// is an attempt (or the event is too old), then applies decideAsync: ack,
// retry later, or dead-letter. A delivery cut short by the loop's end is
// given back at once.
func (l *asyncLoop) handle(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Nak()
		return
	}
	ev := readAsyncEvent(l.name, m.Headers(), m.Data(), meta.Sequence.Stream, meta.Timestamp, meta.NumDelivered)
	spec := l.spec.Load()
	a := clientsdk.AsyncSpec{}
	if spec.Lambda.Async != nil {
		a = *spec.Lambda.Async
	}
	if now := time.Now(); expired(a, ev.enqueued, now) {
		l.finish(m, ev, asyncDecision{action: actDeadLetter, attempts: ev.delivery - 1, reason: reasonAge}, nil, nil, time.Time{})
		return
	}
	wait := invokeWait(spec.Lambda.Timeout.D())
	progress := time.Now()
	for waits := 0; ; waits++ {
		start := time.Now()
		reply, err := l.call(ev, wait)
		if l.ctx.Err() != nil {
			_ = m.Nak()
			return
		}
		r, e := classifyAnswer(l.name, reply, err, wait)
		d := decideAsync(a, asyncTry{delivery: ev.delivery, waits: waits, enqueued: ev.enqueued, now: time.Now()}, r)
		if d.action != actWait {
			last := time.Time{}
			if r == resultOK || r == resultFailed {
				last = start
			}
			var result []byte
			if reply != nil {
				result = reply.Data
			}
			l.finish(m, ev, d, result, e, last)
			return
		}
		if !sleepCtx(l.ctx, d.delay) {
			_ = m.Nak()
			return
		}
		if time.Since(progress) > asyncProgressEvery {
			_ = m.InProgress()
			progress = time.Now()
		}
	}
}

// call invokes the lambda with the event and its request id, waiting at
// most wait for the answer; a request nobody took comes back as the error
// that says why (clientsdk.RequestLambda).
func (l *asyncLoop) call(ev asyncEvent, wait time.Duration) (*nats.Msg, error) {
	req := nats.NewMsg(clientsdk.LambdaSubject(l.name))
	req.Header.Set(clientsdk.HeaderRequestID, ev.id)
	if ev.traceparent != "" {
		req.Header.Set(clientsdk.HeaderTraceparent, ev.traceparent)
	}
	req.Data = ev.body
	ctx, cancel := context.WithTimeout(l.ctx, wait)
	defer cancel()
	return clientsdk.RequestLambda(ctx, l.d.b.nc, l.name, req, l.d.b.router.why)
}

// finish applies a decision that ends the delivery. last is when the call
// that was this delivery's attempt started (zero: it made none).
func (l *asyncLoop) finish(m jetstream.Msg, ev asyncEvent, d asyncDecision, result []byte, e *clientsdk.Error, last time.Time) {
	first := l.firstAttempt(ev, last)
	a := l.spec.Load().Lambda.Async
	switch d.action {
	case actAck:
		l.forget(ev)
		_ = m.Ack()
		if a != nil && a.OnSuccess != "" && !l.d.loopStopped(a.OnSuccess, ev) {
			l.d.publishOutcome(a.OnSuccess, outcomeMsg(a.OnSuccess, ev, d, result, nil))
		}
	case actRetry:
		l.remember(ev, first)
		_ = m.NakWithDelay(d.delay)
		l.d.count(l.name, clientsdk.CounterRetried)
	case actDeadLetter:
		e = deadLetterError(l.name, l.spec.Load(), d, e)
		if err := l.d.deadLetter(l.ctx, ev, asyncFailure{attempts: d.attempts, err: e, first: first, last: last}); err != nil {
			l.logFailure("cannot store a dead letter; the event will be delivered again", err)
			_ = m.NakWithDelay(5 * time.Second)
			return
		}
		l.forget(ev)
		_ = m.Ack()
		if a != nil && a.OnFailure != "" && !l.d.loopStopped(a.OnFailure, ev) {
			l.d.publishOutcome(a.OnFailure, outcomeMsg(a.OnFailure, ev, d, nil, e))
		}
	}
}

// deadLetterError is the error a dead letter records: the last call's,
// said to be the last of the retries, or why the event never ran.
func deadLetterError(name string, spec *clientsdk.AppSpec, d asyncDecision, e *clientsdk.Error) *clientsdk.Error {
	age := clientsdk.DefaultMaxEventAge
	if a := spec.Lambda.Async; a != nil {
		age = maxEventAge(*a)
	}
	switch {
	case d.reason != reasonAge:
		return e
	case e == nil:
		return clientsdk.Errorf(408, "EventAgeExceeded", "the event waited longer than lambda %s's max event age (%s)", name, age)
	case e.Code == 429 || e.Code == 503:
		return clientsdk.Errorf(408, "EventAgeExceeded", "the event waited longer than lambda %s's max event age (%s) for a worker; last answer: %s", name, age, e.Message)
	}
	return e // a failed attempt whose retry would start too late
}

// firstAttempt returns when the event's first attempt started: last for
// a first delivery, else what this server remembered (zero when another
// server, or an earlier run of this one, made it).
func (l *asyncLoop) firstAttempt(ev asyncEvent, last time.Time) time.Time {
	if ev.delivery <= 1 {
		return last
	}
	l.firstsMu.Lock()
	defer l.firstsMu.Unlock()
	return l.firsts[ev.seq]
}

// maxFirsts bounds the first attempts a loop remembers.
const maxFirsts = 100000

func (l *asyncLoop) remember(ev asyncEvent, first time.Time) {
	if first.IsZero() {
		return
	}
	l.firstsMu.Lock()
	defer l.firstsMu.Unlock()
	if len(l.firsts) >= maxFirsts {
		clear(l.firsts)
	}
	l.firsts[ev.seq] = first
}

func (l *asyncLoop) forget(ev asyncEvent) {
	l.firstsMu.Lock()
	delete(l.firsts, ev.seq)
	l.firstsMu.Unlock()
}

// deadLetter stores ev's dead letter and waits until JetStream has it.
func (d *asyncDispatcher) deadLetter(ctx context.Context, ev asyncEvent, f asyncFailure) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := d.b.js.PublishMsg(ctx, deadLetterMsg(ev, f))
	if err == nil {
		d.logger.Info("async event dead-lettered", "app", ev.name, "request_id", ev.id, "attempts", f.attempts, "err", f.err)
	}
	return err
}

// loopStopped reports, and logs, an outcome not sent because its chain of
// async destinations is too long.
func (d *asyncDispatcher) loopStopped(dest string, ev asyncEvent) bool {
	if !chainTooLong(dest, ev) {
		return false
	}
	d.logger.Warn("async outcome not sent: it would be the event's destination chain's hop past the limit (lambdas whose destinations call each other?)",
		"app", ev.name, "request_id", ev.id, "destination", dest, "hops", ev.hops, "max", clientsdk.MaxAsyncHops)
	return true
}

// publishOutcome sends an outcome to its destination with the broker's
// rights (clientsdk.CheckDestination keeps it off dartup's and JetStream's
// own subjects): stored through JetStream for another lambda's async
// subject, a plain publish otherwise. Failures are logged.
func (d *asyncDispatcher) publishOutcome(dest string, m *nats.Msg) {
	if clientsdk.CheckDestination(dest) != "" {
		return
	}
	var err error
	if m.Header.Get(jetstream.MsgIDHeader) != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = d.b.js.PublishMsg(ctx, m)
		cancel()
	} else {
		err = d.b.nc.PublishMsg(m)
	}
	if err != nil {
		d.logger.Warn("cannot send an async outcome to its destination", "destination", dest, "err", clientsdk.AsyncStoreError(err))
	}
}

// count adds one to counter kind of lambda name (AsyncCountersStream).
func (d *asyncDispatcher) count(name, kind string) {
	m := nats.NewMsg(clientsdk.CounterSubject(name, kind))
	m.Header.Set(headerIncr, "+1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.b.js.PublishMsg(ctx, m); err != nil {
		d.logger.Debug("cannot count", "app", name, "counter", kind, "err", err)
	}
}

// headerIncr adds to a JetStream counter.
const headerIncr = "Nats-Incr"

// sleepCtx waits d; false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
