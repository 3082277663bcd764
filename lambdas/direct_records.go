package lambdas

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// What dartup hears of the requests a direct worker takes itself: took
// notices, done records (one in headers, or a batch), checked and
// recorded as invocations or as numbers alone.

// took handles a direct worker's took notice: the request it names is w's
// current invocation from now on, timed as a handed-over one.
func (f *function) took(w *worker, h nats.Header) error {
	rec := headerRecord(h)
	if err := f.checkDirect(rec); err != nil {
		return err
	}
	taken := time.Now().Add(-f.bounded(rec.Ran))
	f.mu.Lock()
	if w.gone || !w.ready || w.current != nil {
		f.mu.Unlock()
		return errors.New("a took notice from a worker that is not free; ignored")
	}
	inv := f.directInvLocked(rec, taken)
	w.unsubSince = time.Time{}
	f.unfreeLocked(w)
	f.assignLocked(w, inv)
	f.mu.Unlock()
	inv.tr.coldStart(w.servedNone)
	f.m.kickStats(f)
	return nil
}

// recordDirect handles the record of a request a direct worker took and
// finished without a took notice (it was over within a moment), from a
// done notice that reached dartup at now: the record is all dartup hears
// of it.
func (f *function) recordDirect(w *worker, rec clientsdk.DoneRecord, now time.Time) error {
	if err := f.checkDirect(rec); err != nil {
		return err
	}
	f.mu.Lock()
	if w.gone || !w.ready || w.current != nil {
		f.mu.Unlock()
		return errors.New("a done notice for a request the worker did not take; ignored")
	}
	w.doneWithIDLocked(rec.RequestID)
	f.completeDirectLocked(w, rec, now)
	return nil
}

// completeDirectLocked records rec, a request w answered, as of a notice
// (or w's in-flight file) read at now; it unlocks f.mu.
func (f *function) completeDirectLocked(w *worker, rec clientsdk.DoneRecord, now time.Time) {
	end := now.Add(-f.bounded(rec.Ago))
	received := end.Add(-f.bounded(rec.Ran))
	inv := f.requeuedLocked(rec)
	if inv == nil && f.m.opts.tracer != nil {
		inv = f.newDirectInv(rec, received)
	}
	cold := w.served == 0
	w.served++
	f.mu.Unlock()
	e := statusOutcome(f.name, strconv.Itoa(rec.Status), rec.ErrorType)
	if inv == nil {
		// Nothing waits for it and no span records it: its numbers are
		// all there is to keep.
		f.st.record(end.Sub(received), e)
		f.m.kickStats(f)
		return
	}
	inv.tr.coldStart(func() bool { return cold })
	inv.completedAt(e, end)
}

// recordDirectBatch handles a direct worker's batched done notice
// (clientsdk.DoneBatchPrefix): each record as recordDirect; it stops at
// the first it refuses, with why.
func (f *function) recordDirectBatch(w *worker, data []byte) error {
	now := time.Now()
	recs, perr := clientsdk.ParseDoneBatch(data)
	f.mu.Lock()
	w.noteBatchLocked(recs)
	f.mu.Unlock()
	for _, rec := range recs {
		if err := f.recordDirect(w, rec, now); err != nil {
			return err
		}
	}
	if perr != nil {
		return fmt.Errorf("a batched done notice that cannot be read (%v); the rest ignored", perr)
	}
	return nil
}

// headerRecord is the record a direct worker's took or done notice in
// headers carries (Ran: the time it says the request ran before it).
func headerRecord(h nats.Header) clientsdk.DoneRecord {
	rec := clientsdk.DoneRecord{RequestID: h.Get(clientsdk.HeaderRequestID), Reply: h.Get(clientsdk.HeaderLambdaReply),
		TraceParent: h.Get(clientsdk.HeaderTraceparent), Requeued: h.Get(clientsdk.HeaderRequeued),
		ErrorType: h.Get(clientsdk.HeaderErrorType)}
	rec.Status, _ = strconv.Atoi(h.Get(clientsdk.HeaderLambdaStatus))
	us, _ := strconv.ParseInt(h.Get(clientsdk.HeaderLambdaElapsed), 10, 64)
	rec.Ran = time.Duration(min(max(us, 0), int64(24*time.Hour/time.Microsecond))) * time.Microsecond
	return rec
}

// bounded is d (a time a direct worker's notice says) within f's
// timeout.
func (f *function) bounded(d time.Duration) time.Duration {
	return min(max(d, 0), f.timeout())
}

// checkDirect tells why a direct worker's record is refused: no valid
// request id, or a reply subject dartup may not answer; nil when it is
// not.
func (f *function) checkDirect(rec clientsdk.DoneRecord) error {
	if !clientsdk.ValidRequestID(rec.RequestID) {
		return errors.New("a direct worker's notice without a valid request id; ignored")
	}
	if rec.Reply != "" && !f.m.replies.Check(clientsdk.LambdaSubject(f.name), rec.Reply) {
		return errors.New("a direct worker's notice whose reply subject dartup may not answer; ignored")
	}
	return nil
}

// directInvLocked is the invocation of the request rec: the one f
// re-published when rec has its token, else a new one received at
// received, with the caller's reply subject and trace.
func (f *function) directInvLocked(rec clientsdk.DoneRecord, received time.Time) *invocation {
	if inv := f.requeuedLocked(rec); inv != nil {
		return inv
	}
	return f.newDirectInv(rec, received)
}

// requeuedLocked is the request f re-published that rec names by its
// token, or nil.
func (f *function) requeuedLocked(rec clientsdk.DoneRecord) *invocation {
	inv := f.requeued[rec.Requeued]
	if rec.Requeued == "" || inv == nil {
		return nil
	}
	delete(f.requeued, rec.Requeued)
	inv.id = rec.RequestID
	return inv
}

// newDirectInv is the invocation of request rec, which a direct worker
// took at received: the caller's reply subject and trace.
func (f *function) newDirectInv(rec clientsdk.DoneRecord, received time.Time) *invocation {
	msg := &nats.Msg{Subject: clientsdk.LambdaSubject(f.name), Reply: rec.Reply, Header: nats.Header{}}
	if tp := rec.TraceParent; tp != "" {
		msg.Header[clientsdk.HeaderTraceparent] = []string{tp}
	}
	inv := &invocation{id: rec.RequestID, msg: msg, received: received, f: f}
	inv.tr = f.startTrace(inv)
	return inv
}
