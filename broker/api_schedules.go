package broker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// schedules answers the schedules verb: every lambda's schedules with their
// state and next fire time.
func (a *api) schedules(ctx context.Context, _ micro.Request) (any, error) {
	specs, err := a.readSpecs(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := a.scheduleInfos(ctx, specs, clientsdk.SchedulesPrefix+".>")
	if err != nil {
		return nil, err
	}
	return clientsdk.SchedulesResponse{Schedules: infos}, nil
}

// appSchedules returns the schedules of one app for describe; nil for an
// app without any, or when the stream cannot be read (describe still
// answers).
func (a *api) appSchedules(ctx context.Context, spec clientsdk.AppSpec) []clientsdk.ScheduleInfo {
	if spec.Lambda == nil || len(spec.Lambda.Schedules) == 0 {
		return nil
	}
	infos, err := a.scheduleInfos(ctx, []clientsdk.AppSpec{spec}, clientsdk.SchedulesPrefix+"."+spec.Name+".*")
	if err != nil {
		a.logger.Debug("describe: cannot read the schedules", "app", spec.Name, "err", err)
		return nil
	}
	return infos
}

// scheduleInfos reads the schedule messages under filter and the last tick
// of each lambda of specs that has schedules, and describes the schedules.
func (a *api) scheduleInfos(ctx context.Context, specs []clientsdk.AppSpec, filter string) ([]clientsdk.ScheduleInfo, error) {
	st, err := a.b.js.Stream(ctx, clientsdk.SchedulesStream)
	if err != nil {
		return nil, err
	}
	stored, err := readSchedules(ctx, st, filter)
	if err != nil {
		return nil, err
	}
	ticks := map[string]tick{}
	for _, s := range specs {
		if s.Lambda == nil || len(s.Lambda.Schedules) == 0 {
			continue
		}
		raw, err := st.GetLastMsgForSubject(ctx, clientsdk.TickSubject(s.Name))
		switch {
		case err == nil:
			ticks[s.Name] = tickOf(raw)
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return nil, err
		}
	}
	return describeSchedules(specs, stored, ticks, time.Now()), nil
}

// tick is what a schedule's tick says: which schedule message fired it
// (Nats-Scheduler), its stream sequence and time, and when that schedule
// fires next (Nats-Schedule-Next).
type tick struct {
	Scheduler string
	Seq       uint64
	Time      time.Time
	Next      time.Time
}

func tickOf(raw *jetstream.RawStreamMsg) tick {
	next, _ := time.Parse(time.RFC3339Nano, raw.Header.Get(jetstream.ScheduleNextHeader))
	return tick{Scheduler: raw.Header.Get(jetstream.SchedulerHeader), Seq: raw.Sequence, Time: raw.Time, Next: next}
}

// describeSchedules lists the schedules of the lambdas of specs, by app and
// index: paused when the lambda is stopped; active, with its next fire
// time, when its stored message is what the spec says; pending otherwise.
// ticks holds the last tick of each lambda: it gives a schedule's last fire
// time, and its next one while that tick came from the message stored now.
func describeSchedules(specs []clientsdk.AppSpec, stored map[string]scheduleMsg, ticks map[string]tick, now time.Time) []clientsdk.ScheduleInfo {
	specs = slices.Clone(specs)
	slices.SortFunc(specs, func(x, y clientsdk.AppSpec) int { return strings.Compare(x.Name, y.Name) })
	want := wantedSchedules(specs)
	out := []clientsdk.ScheduleInfo{}
	for _, s := range specs {
		if s.Kind != clientsdk.KindLambda || s.Lambda == nil {
			continue
		}
		for i, sc := range s.Lambda.Schedules {
			subj := clientsdk.ScheduleSubject(s.Name, i)
			in := clientsdk.ScheduleInfo{App: s.Name, Index: i, Subject: subj, Schedule: sc.Cron, TimeZone: sc.TimeZone, State: clientsdk.SchedulePending}
			t, fired := ticks[s.Name]
			fired = fired && t.Scheduler == subj
			if fired {
				in.Last = t.Time.UTC()
			}
			cur, ok := stored[subj]
			tt, err := parseTimetable(sc, now)
			switch {
			case s.Stopped:
				in.State = clientsdk.SchedulePaused
			case ok && sameSchedule(want[subj], cur) && err == nil:
				in.State = clientsdk.ScheduleActive
				var lastNext time.Time
				if fired && t.Seq > cur.Seq {
					lastNext = t.Next
				}
				in.Next = nextFire(tt, cur.Time, lastNext, now)
			}
			out = append(out, in)
		}
	}
	return out
}
