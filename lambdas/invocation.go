package lambdas

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// Error types sent to callers, after AWS's names where AWS has one.
const (
	TypeThrottled    = "TooManyRequestsException"
	TypeTimedOut     = "Sandbox.Timedout"
	TypeExit         = "Runtime.ExitError"
	TypeStart        = "Runtime.StartError"
	TypeNoResponse   = "Runtime.NoResponse"
	TypeTooLarge     = "Function.ResponseSizeTooLarge"
	TypeUnavailable  = "ServiceUnavailable"
	TypeFunctionExit = "Function.ExitError"
	TypeUnhandled    = "Unhandled"
	// TypeRequestTooLarge: the event is over MaxEventBytes (AWS's name).
	TypeRequestTooLarge = clientsdk.TypeRequestTooLarge
)

// invocation is one request: from the NATS message to the reply.
type invocation struct {
	id       string
	msg      *nats.Msg
	event    []byte
	received time.Time
	f        *function
	tr       invTrace // its hop of the caller's trace (trace.go)

	// guarded by f.mu
	queuedUntil time.Time // when it waits in the queue: its queue deadline
	// token and bounces: a request re-published to direct workers
	// (direct.go), its HeaderRequeued token and how often it came back.
	token      string
	bounces    int
	dispatched time.Time
	deadline   time.Time

	done atomic.Bool
}

// requestID is the id of the invocation msg asks for: the caller's
// clientsdk.HeaderRequestID when it is a valid one (an async event keeps
// its id across attempts, so that a function can be idempotent), else a
// new one.
func requestID(msg *nats.Msg) string {
	if msg != nil && msg.Header != nil {
		if id := msg.Header.Get(clientsdk.HeaderRequestID); clientsdk.ValidRequestID(id) {
			return id
		}
	}
	return clientsdk.NewRequestID()
}

// succeed answers the caller with the function's result.
func (inv *invocation) succeed(body []byte) {
	if !inv.done.CompareAndSwap(false, true) {
		return
	}
	if inv.msg != nil && inv.msg.Reply != "" {
		if err := inv.f.m.replies.Respond(inv.msg, body); err != nil {
			if errors.Is(err, nats.ErrMaxPayload) {
				e := inv.f.responseTooLarge(len(body))
				inv.f.st.record(time.Since(inv.received), e)
				inv.tr.end(e)
				inv.respondError(e)
				return
			}
			inv.f.log.Warn("cannot send lambda reply", "request_id", inv.id, "trace_id", inv.tr.traceID(), "err", err)
		}
	}
	inv.tr.end(nil)
	inv.f.st.record(time.Since(inv.received), nil)
	inv.f.m.kickStats(inv.f)
}

// fail answers the caller with e as service-error headers and JSON body.
func (inv *invocation) fail(e *clientsdk.Error) {
	if inv.done.CompareAndSwap(false, true) {
		inv.failClaimed(e)
	}
}

// failClaimed is fail for an invocation its caller already claimed (set
// done): records it and answers e.
func (inv *invocation) failClaimed(e *clientsdk.Error) {
	inv.f.st.record(time.Since(inv.received), e)
	inv.f.m.kickStats(inv.f)
	lvl := slog.LevelDebug
	if e.Code >= 500 && e.Code != 500 {
		lvl = slog.LevelWarn
	}
	if inv.f.log.Enabled(context.Background(), lvl) { // its arguments cost allocations: only when logged
		inv.f.log.Log(context.Background(), lvl, "invocation failed", "request_id", inv.id, "trace_id", inv.tr.traceID(), "code", e.Code, "type", e.Type, "message", e.Message)
	}
	inv.tr.end(e)
	inv.respondError(e)
}

func (inv *invocation) respondError(e *clientsdk.Error) {
	if inv.msg == nil || inv.msg.Reply == "" {
		return
	}
	if err := inv.f.m.replies.RespondError(inv.msg, e); err != nil {
		inv.f.log.Warn("cannot send lambda error reply", "request_id", inv.id, "trace_id", inv.tr.traceID(), "err", err)
	}
}

// statsWindow is how many recent durations the percentiles are computed over.
const statsWindow = 1024

// stats are one lambda's counters on this node.
type stats struct {
	// dirty: changed since the status reporter last wrote them.
	dirty       atomic.Bool
	mu          sync.Mutex
	invocations uint64
	errors      uint64
	coldStarts  uint64
	throttled   uint64
	timeouts    uint64
	refused     uint64
	durs        [statsWindow]time.Duration
	n           int
	// buckets counts the durations per bucket of
	// clientsdk.LambdaDurationBounds (the last: above every bound), sum
	// adds them up in seconds: a histogram without allocation per record.
	buckets [len(clientsdk.LambdaDurationBounds) + 1]uint64
	sum     float64
}

// durationBucket returns the index of the bucket d falls in: the first
// bound at or above it, or the last bucket above them all.
func durationBucket(d time.Duration) int {
	sec := d.Seconds()
	for i, b := range clientsdk.LambdaDurationBounds {
		if sec <= b {
			return i
		}
	}
	return len(clientsdk.LambdaDurationBounds)
}

func (s *stats) record(d time.Duration, e *clientsdk.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e != nil && e.Code == 429 {
		s.throttled++
		return
	}
	s.invocations++
	if e != nil {
		s.errors++
		if e.Code == 504 {
			s.timeouts++
		}
	}
	s.durs[s.n%statsWindow] = d
	s.n++
	s.buckets[durationBucket(d)]++
	s.sum += d.Seconds()
}

// refuse counts a request refused for its reply subject.
func (s *stats) refuse() {
	s.mu.Lock()
	s.refused++
	s.mu.Unlock()
}

func (s *stats) coldStart() {
	s.mu.Lock()
	s.coldStarts++
	s.mu.Unlock()
}

func (s *stats) snapshot() clientsdk.LambdaStats {
	s.mu.Lock()
	out := clientsdk.LambdaStats{Invocations: s.invocations, Errors: s.errors, ColdStarts: s.coldStarts,
		Throttled: s.throttled, Timeouts: s.timeouts, RefusedReplies: s.refused, DurationSum: s.sum}
	out.DurationBuckets = make([]uint64, len(clientsdk.LambdaDurationBounds))
	var cum uint64
	for i := range out.DurationBuckets {
		cum += s.buckets[i]
		out.DurationBuckets[i] = cum
	}
	d := slices.Clone(s.durs[:min(s.n, statsWindow)])
	s.mu.Unlock()
	if len(d) > 0 {
		slices.Sort(d)
		out.P50 = clientsdk.Duration(d[(len(d)-1)*50/100])
		out.P99 = clientsdk.Duration(d[(len(d)-1)*99/100])
	}
	return out
}
