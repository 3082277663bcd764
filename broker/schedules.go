package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/loglimit"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Timing of the schedule keeper.
const (
	// scheduleResync is how often a keeper compares the stream with the
	// specs when nothing changed (a purge by hand, a write that failed).
	scheduleResync = 30 * time.Second
	// scheduleSettle lets a burst of spec changes (a deploy) settle into
	// one pass.
	scheduleSettle = 50 * time.Millisecond
	// scheduleRetryMin and scheduleRetryMax bound the wait after a pass
	// that failed or met another server's write.
	scheduleRetryMin = time.Second
	scheduleRetryMax = scheduleResync
	// schedulePassTimeout bounds one pass.
	schedulePassTimeout = 20 * time.Second
)

// errScheduleRace says that another server wrote a schedule between this
// pass's read and its write: the next pass looks again.
var errScheduleRace = errors.New("another server changed the schedule at the same time")

// scheduleKeeper makes clientsdk.SchedulesStream hold the schedule messages
// the apps' specs call for (planSchedules): it watches the apps bucket and,
// after each change and every scheduleResync, reads what the stream holds
// and writes only the differences. Every server of a cluster runs one; a
// write expects the subject's last sequence as read, so that of several
// servers writing at once one succeeds and nothing is written twice (which
// would restart an @every schedule's period, or double a tick).
type scheduleKeeper struct {
	js     jetstream.JetStream
	logger *slog.Logger
	poke   chan struct{}
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu sync.Mutex
	// specs are the apps bucket's specs as the watch has delivered them;
	// synced once it has delivered those stored at its start.
	specs  map[string]clientsdk.AppSpec
	synced bool

	failLogged loglimit.Every
}

// startScheduleKeeper starts the keeper of b: a watch of the apps bucket
// and the loop that brings the schedules stream in line with it.
func startScheduleKeeper(ctx context.Context, b *Broker) (*scheduleKeeper, error) {
	kv, err := b.js.KeyValue(ctx, clientsdk.AppsBucket)
	if err != nil {
		return nil, fmt.Errorf("schedules: open %s: %w", clientsdk.AppsBucket, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("schedules: watch %s: %w", clientsdk.AppsBucket, err)
	}
	k := &scheduleKeeper{js: b.js, logger: b.logger.With("component", "schedules"), poke: make(chan struct{}, 1),
		cancel: cancel, specs: map[string]clientsdk.AppSpec{}}
	k.done.Add(2)
	go func() { defer k.done.Done(); k.watch(wctx, w) }()
	go func() { defer k.done.Done(); k.run(wctx) }()
	return k, nil
}

// stop ends the keeper and waits for it.
func (k *scheduleKeeper) stop() {
	k.cancel()
	k.done.Wait()
}

// watch keeps k.specs and pokes the keeper on every change.
func (k *scheduleKeeper) watch(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			k.mu.Lock()
			switch {
			case e == nil:
				k.synced = true
			case e.Operation() != jetstream.KeyValuePut:
				delete(k.specs, e.Key())
			default:
				var s clientsdk.AppSpec
				if err := json.Unmarshal(e.Value(), &s); err == nil {
					k.specs[e.Key()] = s
				}
			}
			synced := k.synced
			k.mu.Unlock()
			if synced {
				k.kick()
			}
		}
	}
}

// kick asks for a pass soon.
func (k *scheduleKeeper) kick() {
	select {
	case k.poke <- struct{}{}:
	default:
	}
}

// snapshot returns the specs known now, and whether the watch has caught up.
func (k *scheduleKeeper) snapshot() ([]clientsdk.AppSpec, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Collect(maps.Values(k.specs)), k.synced
}

// run makes a pass after each poke (once changes settle), every
// scheduleResync, and sooner after a pass that failed.
func (k *scheduleKeeper) run(ctx context.Context) {
	timer := time.NewTimer(scheduleResync)
	defer timer.Stop()
	var retry time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.poke:
			select {
			case <-ctx.Done():
				return
			case <-time.After(scheduleSettle):
			}
		case <-timer.C:
		}
		specs, synced := k.snapshot()
		if !synced {
			timer.Reset(scheduleRetryMin)
			continue
		}
		err := k.pass(ctx, specs)
		var wait time.Duration
		wait, retry = nextScheduleWait(retry, err)
		timer.Reset(wait)
		if err != nil && !errors.Is(err, errScheduleRace) && ctx.Err() == nil && k.failLogged.Allow(time.Now(), time.Minute) {
			k.logger.Warn("cannot bring the schedules in line with the apps; trying again", "err", err, "retry_in", wait)
		}
	}
}

// nextScheduleWait returns the wait before the next pass and the retry
// wait to remember, given the last retry wait (0 after a pass that did its
// work) and this pass's error: scheduleResync after a pass that did its
// work; else scheduleRetryMin, doubled after each failure up to
// scheduleRetryMax.
func nextScheduleWait(retry time.Duration, err error) (wait, nextRetry time.Duration) {
	if err == nil {
		return scheduleResync, 0
	}
	r := min(max(2*retry, scheduleRetryMin), scheduleRetryMax)
	return r, r
}

// pass reads the stream, plans, and applies the plan.
func (k *scheduleKeeper) pass(ctx context.Context, specs []clientsdk.AppSpec) error {
	ctx, cancel := context.WithTimeout(ctx, schedulePassTimeout)
	defer cancel()
	st, err := k.js.Stream(ctx, clientsdk.SchedulesStream)
	if err != nil {
		return err
	}
	stored, err := readSchedules(ctx, st, clientsdk.SchedulesPrefix+".>", clientsdk.TicksPrefix+".>")
	if err != nil {
		return err
	}
	put, purge := planSchedules(specs, stored)
	var errs []error
	for _, subj := range purge {
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			errs = append(errs, fmt.Errorf("purge %s: %w", subj, err))
			continue
		}
		what := "schedule removed"
		if strings.HasPrefix(subj, clientsdk.TicksPrefix+".") {
			what = "ticks of a removed lambda purged"
		}
		k.logger.Info(what, "subject", subj)
	}
	for _, m := range put {
		if err := writeSchedule(ctx, k.js, m); err != nil {
			errs = append(errs, fmt.Errorf("write %s (%s): %w", m.Subject, m.Cron, err))
			continue
		}
		k.logger.Info("schedule stored", "subject", m.Subject, "schedule", m.Cron, "time_zone", m.TimeZone)
	}
	return errors.Join(errs...)
}

// writeSchedule stores m as a JetStream message schedule firing onto
// m.Target, replacing the subject's message (a rollup) if its last
// sequence is still m.Seq; errScheduleRace if it is not.
func writeSchedule(ctx context.Context, js jetstream.JetStream, m scheduleMsg) error {
	msg := nats.NewMsg(m.Subject)
	msg.Header.Set(jetstream.ScheduleHeader, m.Cron)
	msg.Header.Set(jetstream.ScheduleTargetHeader, m.Target)
	if m.TimeZone != "" {
		msg.Header.Set(jetstream.ScheduleTimeZoneHeader, m.TimeZone)
	}
	msg.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	msg.Data, _ = json.Marshal(m.Event)
	_, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(m.Seq))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errScheduleRace
	}
	return err
}

// readSchedules reads, for each subject of the schedules stream that one
// of filters matches, its last message: a schedule's with its headers,
// event, sequence and time; a tick subject's with only its Subject.
func readSchedules(ctx context.Context, st jetstream.Stream, filters ...string) (map[string]scheduleMsg, error) {
	out := map[string]scheduleMsg{}
	for _, f := range filters {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(f))
		if err != nil {
			return nil, err
		}
		for subj := range info.State.Subjects {
			if strings.HasPrefix(subj, clientsdk.TicksPrefix+".") {
				out[subj] = scheduleMsg{Subject: subj}
				continue
			}
			raw, err := st.GetLastMsgForSubject(ctx, subj)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // purged since
			}
			if err != nil {
				return nil, err
			}
			out[subj] = storedSchedule(raw)
		}
	}
	return out, nil
}

// storedSchedule reads a schedule message; an event that does not decode
// stays empty (and differs from any wanted one).
func storedSchedule(raw *jetstream.RawStreamMsg) scheduleMsg {
	m := scheduleMsg{Subject: raw.Subject, Seq: raw.Sequence, Time: raw.Time,
		Cron: raw.Header.Get(jetstream.ScheduleHeader), TimeZone: raw.Header.Get(jetstream.ScheduleTimeZoneHeader),
		Target: raw.Header.Get(jetstream.ScheduleTargetHeader)}
	_ = json.Unmarshal(raw.Data, &m.Event)
	return m
}
