package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// sweep dead-letters the events stored for names that are no lambda (a
// plain `nats pub dartup.async.NAME` for a NAME never pushed, removed since,
// or a daemon), so that they do not wait unseen: `dartup dlq ls` shows
// them, and `dartup dlq redrive NAME` runs them once a lambda NAME exists.
// Events under a name no app can have (dartup.async.-x) are dropped.
func (d *asyncDispatcher) sweep(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := d.stream.Info(ctx, jetstream.WithSubjectFilter(clientsdk.AsyncPrefix+".*"))
	if err != nil {
		return
	}
	for subj, n := range info.State.Subjects {
		name := strings.TrimPrefix(subj, clientsdk.AsyncPrefix+".")
		if clientsdk.ValidateName(name) != nil {
			// No lambda can ever have this name: nothing could run or
			// redrive the events, nor purge them by name. Dropped.
			if err := d.stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err == nil {
				d.logger.Warn("dropped async events stored under a name no app can have", "subject", subj, "events", n)
			}
			continue
		}
		e := clientsdk.Errorf(404, "NotFound", "no lambda named %q when the event was taken; push one, then `dartup dlq redrive %s`", name, name)
		s, st := d.b.router.find(ctx, name, true)
		if st == specUnchecked {
			continue // pushed a moment ago, perhaps: the next sweep looks
		}
		if st == specFound {
			if s.Kind == clientsdk.KindLambda {
				continue
			}
			e = clientsdk.Errorf(403, "NotALambda", "%s is a daemon, not a lambda; only lambdas take async invocations", name)
		}
		if n, err := d.deadLetterAll(ctx, name, e); err != nil {
			d.logger.Debug("cannot dead-letter the events of a name that is no lambda", "name", name, "err", err)
		} else if n > 0 {
			d.logger.Warn("dead-lettered async events of a name that is no lambda", "name", name, "events", n, "reason", e.Type)
		}
	}
}

// orphanConsumerName names the consumer that empties the events of name.
func orphanConsumerName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "dartup-async-orphans-" + hex.EncodeToString(sum[:8])
}

// deadLetterAll moves every event of name to the dead letters with error e,
// through a consumer of its own; it fails when a lambda's consumer holds the
// subject (the async stream is a work queue: one consumer per subject).
func (d *asyncDispatcher) deadLetterAll(ctx context.Context, name string, e *clientsdk.Error) (int, error) {
	cfg := jetstream.ConsumerConfig{Name: orphanConsumerName(name), FilterSubject: clientsdk.AsyncSubject(name),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, InactiveThreshold: time.Minute, MaxDeliver: -1}
	c, err := d.stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer func() { _ = d.stream.DeleteConsumer(context.WithoutCancel(ctx), cfg.Name) }()
	total := 0
	for ctx.Err() == nil {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			return total, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			ev := readAsyncEvent(name, m.Headers(), m.Data(), meta.Sequence.Stream, meta.Timestamp, meta.NumDelivered)
			if err := d.deadLetter(ctx, ev, asyncFailure{err: e}); err != nil {
				_ = m.Nak()
				return total, err
			}
			_ = m.Ack()
			total++
		}
		if n == 0 {
			return total, nil
		}
	}
	return total, ctx.Err()
}

// forget deletes a removed lambda's consumer, events, dead letters and
// counters.
func (d *asyncDispatcher) forget(ctx context.Context, name string) error {
	var errs []error
	if err := d.stream.DeleteConsumer(ctx, asyncConsumerName(name)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		errs = append(errs, err)
	}
	errs = append(errs, d.stream.Purge(ctx, jetstream.WithPurgeSubject(clientsdk.AsyncSubject(name))),
		d.dlq.Purge(ctx, jetstream.WithPurgeSubject(clientsdk.DLQSubject(name))))
	if counters, err := d.b.js.Stream(ctx, clientsdk.AsyncCountersStream); err == nil {
		errs = append(errs, counters.Purge(ctx, jetstream.WithPurgeSubject(clientsdk.CountersPrefix+"."+name+".*")))
	} else {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stats reads lambda name's async stats: its consumer's pending and
// unacknowledged events (the stream's count of its events before the
// consumer exists), its retries counter and its dead letters.
func (d *asyncDispatcher) stats(ctx context.Context, name string) (*clientsdk.AsyncStats, error) {
	var st clientsdk.AsyncStats
	if c, err := d.stream.Consumer(ctx, asyncConsumerName(name)); err == nil {
		ci := c.CachedInfo()
		st.Queued, st.InFlight = ci.NumPending, uint64(ci.NumAckPending)
	} else if errors.Is(err, jetstream.ErrConsumerNotFound) {
		n, err := subjectCount(ctx, d.stream, clientsdk.AsyncSubject(name))
		if err != nil {
			return nil, err
		}
		st.Queued = n
	} else {
		return nil, err
	}
	n, err := subjectCount(ctx, d.dlq, clientsdk.DLQSubject(name))
	if err != nil {
		return nil, err
	}
	st.DeadLettered = n
	st.Retried, err = d.counter(ctx, name, clientsdk.CounterRetried)
	return &st, err
}

// subjectCount returns how many messages stream s holds on subject.
func subjectCount(ctx context.Context, s jetstream.Stream, subject string) (uint64, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// counter reads counter kind of lambda name (0 before its first count).
func (d *asyncDispatcher) counter(ctx context.Context, name, kind string) (uint64, error) {
	s, err := d.b.js.Stream(ctx, clientsdk.AsyncCountersStream)
	if err != nil {
		return 0, err
	}
	m, err := s.GetLastMsgForSubject(ctx, clientsdk.CounterSubject(name, kind))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v struct {
		Val string `json:"val"`
	}
	if err := json.Unmarshal(m.Data, &v); err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(v.Val, 10, 64)
	if err != nil {
		return 0, err
	}
	return n, nil
}
