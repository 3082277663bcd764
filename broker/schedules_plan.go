package broker

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// scheduleMsg is a schedule's message in clientsdk.SchedulesStream: as the
// specs call for it, or as stored (then with its Seq and Time). A tick
// subject (clientsdk.TickSubject) among the stored ones has only Subject.
type scheduleMsg struct {
	Subject  string
	Cron     string // header Nats-Schedule
	TimeZone string // header Nats-Schedule-Time-Zone
	Target   string // header Nats-Schedule-Target
	Event    clientsdk.ScheduledEvent
	// Seq and Time are the stored message's stream sequence and time.
	Seq  uint64
	Time time.Time
}

// wantedSchedules returns the schedule messages the specs call for, by
// subject: each schedule of every lambda that is not stopped (a killed
// lambda's schedules are paused: it has none).
func wantedSchedules(specs []clientsdk.AppSpec) map[string]scheduleMsg {
	out := map[string]scheduleMsg{}
	for _, s := range specs {
		if s.Kind != clientsdk.KindLambda || s.Lambda == nil || s.Stopped {
			continue
		}
		for i, sc := range s.Lambda.Schedules {
			subj := clientsdk.ScheduleSubject(s.Name, i)
			out[subj] = scheduleMsg{Subject: subj, Cron: sc.Cron, TimeZone: sc.TimeZone,
				Target: clientsdk.TickSubject(s.Name), Event: clientsdk.NewScheduledEvent(s.Name, i, sc)}
		}
	}
	return out
}

// planSchedules compares the schedule messages the specs call for with
// those stored (by subject) and returns what to change: the messages to
// write, each with the Seq of the stored one it replaces (0 for none; the
// write expects it as the subject's last sequence, so that of several
// servers planning at once one writes), and the subjects to purge: the
// schedules no spec calls for, and the ticks of apps that are no longer
// lambdas. An unchanged schedule is left alone: writing it again would
// restart an @every schedule's period.
func planSchedules(specs []clientsdk.AppSpec, stored map[string]scheduleMsg) (put []scheduleMsg, purge []string) {
	want := wantedSchedules(specs)
	lambdas := map[string]bool{}
	for _, s := range specs {
		lambdas[s.Name] = s.Kind == clientsdk.KindLambda
	}
	for _, subj := range slices.Sorted(maps.Keys(want)) {
		w := want[subj]
		cur, ok := stored[subj]
		if ok && sameSchedule(w, cur) {
			continue
		}
		w.Seq = cur.Seq
		put = append(put, w)
	}
	for _, subj := range slices.Sorted(maps.Keys(stored)) {
		if app, ok := strings.CutPrefix(subj, clientsdk.TicksPrefix+"."); ok {
			if !lambdas[app] {
				purge = append(purge, subj)
			}
			continue
		}
		if _, ok := want[subj]; !ok {
			purge = append(purge, subj)
		}
	}
	return put, purge
}

// sameSchedule reports whether stored message b is what a says: the same
// timetable, target and event (but its time and id, which each tick
// fills). Other headers and the JSON's layout do not count, so that servers
// of two versions do not rewrite each other's messages.
func sameSchedule(a, b scheduleMsg) bool {
	ea, eb := a.Event, b.Event
	return a.Cron == b.Cron && a.TimeZone == b.TimeZone && a.Target == b.Target &&
		ea.Version == eb.Version && ea.DetailType == eb.DetailType && ea.Source == eb.Source &&
		slices.Equal(ea.Resources, eb.Resources) && ea.Detail == eb.Detail
}
