package broker

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// scheduled is a lambda spec with schedules ("CRON" or "CRON|ZONE").
func scheduled(name string, stopped bool, crons ...string) clientsdk.AppSpec {
	l := &clientsdk.LambdaSpec{}
	for _, c := range crons {
		cron, zone, _ := strings.Cut(c, "|")
		l.Schedules = append(l.Schedules, clientsdk.Schedule{Cron: cron, TimeZone: zone})
	}
	return clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Lambda: l, Stopped: stopped}
}

// storedFrom is what the stream holds once the schedules of specs were
// written, at sequences 10, 11, …
func storedFrom(specs ...clientsdk.AppSpec) map[string]scheduleMsg {
	out := map[string]scheduleMsg{}
	seq := uint64(10)
	w := wantedSchedules(specs)
	for _, subj := range sortedKeys(w) {
		m := w[subj]
		m.Seq, m.Time = seq, time.Unix(int64(seq), 0)
		out[subj] = m
		seq++
	}
	return out
}

func TestPlanSchedules(t *testing.T) {
	every := scheduled("tick", false, "@every 1s")
	two := scheduled("tick", false, "@every 1s", "0 0 9 * * *|Europe/Berlin")
	tick := func(app string) map[string]scheduleMsg {
		return map[string]scheduleMsg{clientsdk.TickSubject(app): {Subject: clientsdk.TickSubject(app)}}
	}
	join := func(ms ...map[string]scheduleMsg) map[string]scheduleMsg {
		out := map[string]scheduleMsg{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	changedBody := storedFrom(every)
	m := changedBody["dartup.schedules.tick.0"]
	m.Event.Resources = []string{"dartup.schedules.other.0"}
	changedBody["dartup.schedules.tick.0"] = m
	newerLayout := storedFrom(every)
	m = newerLayout["dartup.schedules.tick.0"]
	m.Event.ID, m.Event.Time = "filled", time.Unix(5, 0) // fields each tick fills do not count
	newerLayout["dartup.schedules.tick.0"] = m
	daemon := clientsdk.AppSpec{Name: "tick", Kind: clientsdk.KindDaemon}

	for _, tc := range []struct {
		name   string
		specs  []clientsdk.AppSpec
		stored map[string]scheduleMsg
		put    []string // subject@expected sequence
		purge  []string
	}{
		{"nothing", nil, nil, nil, nil},
		{"a new schedule", []clientsdk.AppSpec{every}, nil, []string{"dartup.schedules.tick.0@0"}, nil},
		{"stored as wanted: no write", []clientsdk.AppSpec{every}, join(storedFrom(every), tick("tick")), nil, nil},
		{"event fields each tick fills", []clientsdk.AppSpec{every}, newerLayout, nil, nil},
		{"a second schedule added", []clientsdk.AppSpec{two}, storedFrom(every), []string{"dartup.schedules.tick.1@0"}, nil},
		{"a schedule removed", []clientsdk.AppSpec{every}, storedFrom(two), nil, []string{"dartup.schedules.tick.1"}},
		{"a schedule changed", []clientsdk.AppSpec{scheduled("tick", false, "@every 2s")}, storedFrom(every), []string{"dartup.schedules.tick.0@10"}, nil},
		{"a time zone changed", []clientsdk.AppSpec{scheduled("tick", false, "@every 1s", "0 0 9 * * *|Europe/Paris")}, storedFrom(two),
			[]string{"dartup.schedules.tick.1@11"}, nil},
		{"an event changed", []clientsdk.AppSpec{every}, changedBody, []string{"dartup.schedules.tick.0@10"}, nil},
		{"killed: paused", []clientsdk.AppSpec{scheduled("tick", true, "@every 1s", "@daily")}, join(storedFrom(two), tick("tick")),
			nil, []string{"dartup.schedules.tick.0", "dartup.schedules.tick.1"}},
		{"started again", []clientsdk.AppSpec{two}, tick("tick"), []string{"dartup.schedules.tick.0@0", "dartup.schedules.tick.1@0"}, nil},
		{"removed: schedules and ticks", nil, join(storedFrom(two), tick("tick")),
			nil, []string{"dartup.schedules.tick.0", "dartup.schedules.tick.1", "dartup.ticks.tick"}},
		{"now a daemon", []clientsdk.AppSpec{daemon}, join(storedFrom(every), tick("tick")), nil, []string{"dartup.schedules.tick.0", "dartup.ticks.tick"}},
		{"schedules dropped, ticks kept", []clientsdk.AppSpec{scheduled("tick", false)}, join(storedFrom(every), tick("tick")), nil, []string{"dartup.schedules.tick.0"}},
		{"someone else's message on a subject", []clientsdk.AppSpec{every},
			map[string]scheduleMsg{"dartup.schedules.tick.0": {Subject: "dartup.schedules.tick.0", Seq: 3}}, []string{"dartup.schedules.tick.0@3"}, nil},
		{"two apps, one untouched", []clientsdk.AppSpec{every, scheduled("other", false, "@hourly")}, storedFrom(every),
			[]string{"dartup.schedules.other.0@0"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put, purge := planSchedules(tc.specs, tc.stored)
			var got []string
			for _, p := range put {
				got = append(got, fmt.Sprintf("%s@%d", p.Subject, p.Seq))
			}
			if !slices.Equal(got, tc.put) || !slices.Equal(purge, tc.purge) {
				t.Errorf("put %v, purge %v; want put %v, purge %v", got, purge, tc.put, tc.purge)
			}
			// Applying the plan leaves nothing to do.
			after := map[string]scheduleMsg{}
			for k, v := range tc.stored {
				if !slices.Contains(purge, k) {
					after[k] = v
				}
			}
			for _, p := range put {
				after[p.Subject] = p
			}
			if put, purge := planSchedules(tc.specs, after); len(put)+len(purge) > 0 {
				t.Errorf("after the plan: put %d, purge %v; want nothing", len(put), purge)
			}
		})
	}
}

func TestWantedScheduleMessage(t *testing.T) {
	w := wantedSchedules([]clientsdk.AppSpec{scheduled("tick", false, "@every 1s", "0 0 9 * * *|Europe/Berlin")})
	m := w["dartup.schedules.tick.1"]
	e := m.Event
	if m.Cron != "0 0 9 * * *" || m.TimeZone != "Europe/Berlin" || m.Target != "dartup.ticks.tick" ||
		e.Version != "0" || e.DetailType != "Scheduled Event" || e.Source != "dartup.scheduler" || e.ID != "" || !e.Time.IsZero() ||
		!slices.Equal(e.Resources, []string{"dartup.schedules.tick.1"}) || e.Detail.Schedule != "0 0 9 * * *" || e.Detail.TimeZone != "Europe/Berlin" {
		t.Errorf("schedule message %+v", m)
	}
}

func TestNextScheduleWait(t *testing.T) {
	var waits []time.Duration
	retry := time.Duration(0)
	for _, err := range []error{nil, errScheduleRace, errors.New("x"), errors.New("x"), errors.New("x"), errors.New("x"), errors.New("x"), errors.New("x"), nil, errors.New("x")} {
		var w time.Duration
		w, retry = nextScheduleWait(retry, err)
		waits = append(waits, w)
	}
	s := time.Second
	want := []time.Duration{30 * s, s, 2 * s, 4 * s, 8 * s, 16 * s, 30 * s, 30 * s, 30 * s, s}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
}

func TestDescribeSchedules(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 30, 0, time.UTC)
	two := scheduled("tick", false, "@every 1m", "0 0 9 * * *|Europe/Berlin")
	stored := storedFrom(two) // tick.0 at seq 10, time 1970 +10 s
	s0 := stored["dartup.schedules.tick.0"]
	s0.Time = time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)
	stored["dartup.schedules.tick.0"] = s0
	daemon := clientsdk.AppSpec{Name: "web", Kind: clientsdk.KindDaemon}
	paused := scheduled("zzz", true, "@hourly")
	pending := scheduled("new", false, "@daily")
	aheadTick := map[string]tick{"tick": {Scheduler: "dartup.schedules.tick.0", Seq: 20, Time: now.Add(-30 * time.Second), Next: now.Add(45 * time.Second)}}
	oldTick := map[string]tick{"tick": {Scheduler: "dartup.schedules.tick.0", Seq: 5, Time: now.Add(-time.Hour), Next: now.Add(45 * time.Second)}}

	for _, tc := range []struct {
		name  string
		ticks map[string]tick
		want  []string // app.index state next last
	}{
		{"no ticks", nil, []string{
			"new.0 pending - -",
			"tick.0 active 12:01:00 -",
			"tick.1 active 08:00:00 -",
			"zzz.0 paused - -"}},
		{"a tick of the message stored now says next", aheadTick, []string{
			"new.0 pending - -",
			"tick.0 active 12:01:15 12:00:00",
			"tick.1 active 08:00:00 -",
			"zzz.0 paused - -"}},
		{"a tick of the message before does not", oldTick, []string{
			"new.0 pending - -",
			"tick.0 active 12:01:00 11:00:30",
			"tick.1 active 08:00:00 -",
			"zzz.0 paused - -"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			infos := describeSchedules([]clientsdk.AppSpec{paused, two, daemon, pending}, stored, tc.ticks, now)
			var got []string
			hm := func(x time.Time) string {
				if x.IsZero() {
					return "-"
				}
				return x.UTC().Format("15:04:05")
			}
			for _, in := range infos {
				got = append(got, fmt.Sprintf("%s.%d %s %s %s", in.App, in.Index, in.State, hm(in.Next), hm(in.Last)))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}
