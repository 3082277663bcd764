package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The decisions of the async dispatcher (docs/events.md), as pure
// functions of the spec, the event and the answer; async.go and
// async_event.go apply them.

// asyncResult classifies the answer to one call of an async event.
type asyncResult int

const (
	// resultOK: the function succeeded.
	resultOK asyncResult = iota
	// resultBusy: throttled (429) or not hosted right now (503, nothing
	// answering): not an attempt; the event waits and is called again.
	resultBusy
	// resultFailed: a function error, a timeout, a worker that died or an
	// invocation that got no answer at all (its node died): an attempt.
	resultFailed
	// resultUnrunnable: the event can never run (its lambda is gone or is
	// no lambda, or the event is too large): dead-lettered at once.
	resultUnrunnable
)

// classifyAnswer classifies the answer (msg, err) to a request on
// lambda.NAME made with a deadline of wait (by clientsdk.RequestLambda: a
// request that found no responders comes back as the *clientsdk.Error that
// says why), and returns the error to record (nil on success). The caller
// handles its own shutdown first: a request it gave up on is neither an
// attempt nor a failure.
func classifyAnswer(name string, msg *nats.Msg, err error, wait time.Duration) (asyncResult, *clientsdk.Error) {
	var e *clientsdk.Error
	switch {
	case errors.As(err, &e): // no responders, and why
	case errors.Is(err, nats.ErrNoResponders):
		return resultBusy, clientsdk.Errorf(503, "NoRunner", "nothing answers %s", clientsdk.LambdaSubject(name))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return resultFailed, clientsdk.Errorf(504, "Dartup.NoAnswer", "no answer from %s within %s: the worker or its node died mid-invocation, or it was lost", clientsdk.LambdaSubject(name), wait)
	case err != nil:
		return resultBusy, clientsdk.Errorf(503, "InvokeError", "cannot invoke %s: %v", clientsdk.LambdaSubject(name), err)
	default:
		e = clientsdk.ErrorFromMsg(msg)
	}
	switch {
	case e == nil:
		return resultOK, nil
	case e.Code == 429 || e.Code == 503:
		return resultBusy, e
	case e.Code == 400 || e.Code == 403 || e.Code == 404 || e.Code == 413:
		return resultUnrunnable, e
	}
	return resultFailed, e
}

// asyncAction is what the dispatcher does with an event after a call.
type asyncAction int

const (
	// actAck: done; acknowledge it (and tell the on-success destination).
	actAck asyncAction = iota
	// actWait: keep the delivery (in progress), wait delay, call again.
	actWait
	// actRetry: give the delivery back to be redelivered after delay.
	actRetry
	// actDeadLetter: store it in the dead letters, then acknowledge it
	// (and tell the on-failure destination).
	actDeadLetter
)

// asyncDecision is an action with its delay or its reason.
type asyncDecision struct {
	action asyncAction
	delay  time.Duration
	// attempts is how many times the function ran the event, for a dead
	// letter and the outcome.
	attempts int
	reason   string
}

// Reasons of dead letters.
const (
	reasonRetries    = "retries exhausted"
	reasonAge        = "max event age"
	reasonUnrunnable = "cannot run"
)

// asyncTry says where an event stands when a call was answered.
type asyncTry struct {
	// delivery is the delivery's number (JetStream's NumDelivered, from
	// 1): the attempt this call was, when it ran the function.
	delivery int
	// waits is how many times this delivery already waited (actWait).
	waits    int
	enqueued time.Time
	now      time.Time
}

// expired reports whether an event stored at enqueued is older than the
// lambda's maximum event age at now.
func expired(a clientsdk.AsyncSpec, enqueued, now time.Time) bool {
	return now.Sub(enqueued) > maxEventAge(a)
}

func maxEventAge(a clientsdk.AsyncSpec) time.Duration {
	if a.MaxEventAge <= 0 {
		return clientsdk.DefaultMaxEventAge
	}
	return a.MaxEventAge.D()
}

func retries(a clientsdk.AsyncSpec) int {
	if a.Retries == nil {
		return clientsdk.DefaultRetries
	}
	return *a.Retries
}

// decideAsync decides what follows a call answered with r. An attempt that
// failed is retried after Backoff(attempt) until 1 + Retries attempts, or
// dead-lettered at once when the retry would start past the maximum event
// age; a busy answer waits (not an attempt) until the event is too old.
func decideAsync(a clientsdk.AsyncSpec, t asyncTry, r asyncResult) asyncDecision {
	ran := t.delivery - 1 // attempts before this delivery
	switch r {
	case resultOK:
		return asyncDecision{action: actAck, attempts: t.delivery}
	case resultUnrunnable:
		return asyncDecision{action: actDeadLetter, attempts: ran, reason: reasonUnrunnable}
	case resultBusy:
		if expired(a, t.enqueued, t.now) {
			return asyncDecision{action: actDeadLetter, attempts: ran, reason: reasonAge}
		}
		return asyncDecision{action: actWait, delay: busyWait(t.waits), attempts: ran}
	}
	if t.delivery >= 1+retries(a) {
		return asyncDecision{action: actDeadLetter, attempts: t.delivery, reason: reasonRetries}
	}
	delay := a.Backoff(t.delivery)
	if t.now.Add(delay).Sub(t.enqueued) > maxEventAge(a) {
		return asyncDecision{action: actDeadLetter, attempts: t.delivery, reason: reasonAge}
	}
	return asyncDecision{action: actRetry, delay: delay, attempts: t.delivery}
}

// busyWait is the wait before calling again after the n-th busy answer of
// a delivery (from 0): 50 ms doubling to 2 s.
func busyWait(n int) time.Duration {
	return min(50*time.Millisecond<<min(n, 6), 2*time.Second)
}

// Dispatching bounds.
const (
	// asyncAckSlack is added to the longest wait for an answer to make a
	// consumer's AckWait: a delivery is only redelivered elsewhere when
	// its dispatcher is gone.
	asyncAckSlack = 15 * time.Second
	// asyncMaxAckPending bounds a lambda's events handed out at once over
	// the cluster: running, waiting for a worker, or waiting for the
	// backoff of their retry.
	asyncMaxAckPending = 1000
	// asyncMaxConcurrency bounds the calls one server has open per lambda.
	asyncMaxConcurrency = 256
)

// asyncConcurrency is how many events of lambda l one server calls at
// once: twice the workers of the nodes that host it (the ones running and
// as many waiting to take over, so that none waits longer than one
// invocation), shared by the servers that dispatch, at least 2, at most
// asyncMaxConcurrency. More would only be throttled (a 429 is not an
// attempt: the event waits) or time out in the runners' queues.
func asyncConcurrency(l clientsdk.LambdaSpec, nodes, servers int) int {
	n := (2*l.MaxWorkers*max(nodes, 1) + max(servers, 1) - 1) / max(servers, 1)
	return min(max(n, 2), asyncMaxConcurrency)
}

// hostingNodes counts, per lambda, the live nodes that host it.
func hostingNodes(live map[string]clientsdk.Node) map[string]int {
	out := map[string]int{}
	for _, n := range live {
		for _, name := range n.LambdaNames {
			out[name]++
		}
	}
	return out
}

// asyncConsumerName is the durable consumer of lambda name's events.
func asyncConsumerName(name string) string { return "dartup-async-" + name }

// asyncConsumerConfig is the durable consumer of spec's async events:
// explicit acks, redelivered only when the dispatcher that holds one is
// gone for longer than the longest invocation (twice the timeout and
// slack), no delivery limit (the dispatcher dead-letters).
func asyncConsumerConfig(spec clientsdk.AppSpec) jetstream.ConsumerConfig {
	timeout := clientsdk.DefaultTimeout
	if spec.Lambda != nil {
		timeout = spec.Lambda.Timeout.D()
	}
	return jetstream.ConsumerConfig{
		Durable:       asyncConsumerName(spec.Name),
		Description:   "dartup: async invocations of lambda " + spec.Name,
		FilterSubject: clientsdk.AsyncSubject(spec.Name),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       invokeWait(timeout) + asyncAckSlack,
		MaxDeliver:    -1,
		MaxAckPending: asyncMaxAckPending,
	}
}

// asyncEvent is a stored async event as the dispatcher sees it.
type asyncEvent struct {
	name string
	// seq is the event's sequence in the async stream.
	seq uint64
	id  string
	// enqueued is when the stream stored it; delivery its delivery count.
	enqueued time.Time
	delivery int
	// body is the event the function gets: a schedule's tick with its time
	// and id filled in.
	body []byte
	// hops is how many outcomes in a row led to this event (HeaderHops).
	hops int
	// traceparent is the valid W3C traceparent stored with the event
	// (the gateway's hop), passed on to each attempt; "" for none.
	traceparent string
}

// readAsyncEvent reads a delivered event. Its request id is the header's
// when valid, else one derived from its place in the stream, the same on
// every delivery.
func readAsyncEvent(name string, h nats.Header, data []byte, seq uint64, stored time.Time, delivered uint64) asyncEvent {
	ev := asyncEvent{name: name, seq: seq, enqueued: stored, delivery: int(min(delivered, 1<<30)), body: data}
	ev.id = h.Get(clientsdk.HeaderRequestID)
	if !clientsdk.ValidRequestID(ev.id) {
		ev.id = clientsdk.DerivedRequestID(fmt.Sprintf("%s/%d/%d", clientsdk.AsyncStream, seq, stored.UnixNano()))
	}
	if h.Get(headerScheduler) != "" {
		ev.body = fillScheduledEvent(data, stored, ev.id)
	}
	if tc, ok := clientsdk.TraceFromNATS(h); ok {
		ev.traceparent = tc.String()
	}
	if n, err := strconv.Atoi(h.Get(clientsdk.HeaderHops)); err == nil && n > 0 {
		ev.hops = min(n, clientsdk.MaxAsyncHops+1)
	}
	return ev
}

// headerScheduler marks a message fired by a JetStream message schedule.
const headerScheduler = "Nats-Scheduler"

// fillScheduledEvent fills the time (when the tick was stored, UTC, to the
// second) and id (the request id) of a schedule's tick where they are
// missing or empty, keeping every other field; a body that is not a JSON
// object is returned as it is.
func fillScheduledEvent(data []byte, stored time.Time, id string) []byte {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil || fields == nil {
		return data
	}
	empty := func(k string) bool {
		v := strings.TrimSpace(string(fields[k]))
		return v == "" || v == "null" || v == `""` || v == `"0001-01-01T00:00:00Z"`
	}
	if empty("time") {
		fields["time"], _ = json.Marshal(stored.UTC().Round(time.Second))
	}
	if empty("id") {
		fields["id"], _ = json.Marshal(id)
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return data
	}
	return out
}

// asyncFailure is what a dead letter records.
type asyncFailure struct {
	attempts            int
	err                 *clientsdk.Error
	first, last, deadAt time.Time
}

// maxHeaderError bounds the error message kept in a dead letter's header.
const maxHeaderError = 4 << 10

// deadLetterMsg is the dead letter of ev: the event as the function got it
// on "dartup.dlq.NAME", with its request id, attempts, last error and
// times in headers, and a message id that stores it once however often
// its event is dead-lettered within the dedupe window.
func deadLetterMsg(ev asyncEvent, f asyncFailure) *nats.Msg {
	m := nats.NewMsg(clientsdk.DLQSubject(ev.name))
	m.Data = ev.body
	h := m.Header
	h.Set(clientsdk.HeaderRequestID, ev.id)
	h.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s.%d", ev.id, ev.seq))
	h.Set(clientsdk.HeaderAttempts, strconv.Itoa(f.attempts))
	h.Set(clientsdk.HeaderEnqueued, ev.enqueued.UTC().Format(time.RFC3339Nano))
	if f.err != nil {
		h.Set(clientsdk.HeaderError, headerSafe(f.err.Message, maxHeaderError))
		h.Set(clientsdk.HeaderErrorType, headerSafe(f.err.Type, 256))
		h.Set(clientsdk.HeaderErrorCode, strconv.Itoa(f.err.Code))
	}
	if !f.first.IsZero() {
		h.Set(clientsdk.HeaderFirstAttempt, f.first.UTC().Format(time.RFC3339Nano))
	}
	if !f.last.IsZero() {
		h.Set(clientsdk.HeaderLastAttempt, f.last.UTC().Format(time.RFC3339Nano))
	}
	return m
}

// headerSafe makes s a header value: control characters become spaces,
// and it is cut to at most n bytes of valid UTF-8.
func headerSafe(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}

// outcomeMsg is what destination dest receives about ev: an AsyncOutcome.
// On another lambda's async subject it is a new async event whose request
// id, derived from ev's, is also its message id: an outcome sent twice
// (the event ran twice) is stored once within the dedupe window.
func outcomeMsg(dest string, ev asyncEvent, d asyncDecision, result []byte, e *clientsdk.Error) *nats.Msg {
	o := clientsdk.AsyncOutcome{RequestID: ev.id, Function: ev.name, Success: d.action == actAck, Attempts: d.attempts,
		Enqueued: ev.enqueued.UTC(), Event: clientsdk.RawJSON(ev.body)}
	if o.Success {
		o.Result = clientsdk.RawJSON(result)
	} else {
		o.Error = e
	}
	m := nats.NewMsg(dest)
	m.Data, _ = json.Marshal(o)
	m.Header.Set(clientsdk.HeaderRequestID, ev.id)
	if strings.HasPrefix(dest, clientsdk.AsyncPrefix+".") {
		id := clientsdk.DerivedRequestID(ev.id + "/" + dest)
		m.Header.Set(clientsdk.HeaderRequestID, id)
		m.Header.Set(jetstream.MsgIDHeader, id)
		m.Header.Set(clientsdk.HeaderHops, strconv.Itoa(ev.hops+1))
	}
	return m
}

// chainTooLong reports whether an outcome of ev to dest would make one
// async hop too many (a loop of destinations).
func chainTooLong(dest string, ev asyncEvent) bool {
	return strings.HasPrefix(dest, clientsdk.AsyncPrefix+".") && ev.hops+1 > clientsdk.MaxAsyncHops
}
