package broker

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/robfig/cron/v3"
)

// cronParser reads the 6-field cron expressions (seconds first) that
// nats-server's message schedules take. nats-server's own parser
// (server/cron.go) is derived from robfig/cron and has the same fields,
// ranges, steps and names; robfig's descriptors and "TZ=" prefix, which
// nats-server does not know, are left to parseTimetable.
var cronParser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// descriptors are the named schedules nats-server takes, as the cron
// expressions it reads them as (server/scheduler.go parseMsgSchedule).
var descriptors = map[string]string{
	"@yearly":   "0 0 0 1 1 *",
	"@annually": "0 0 0 1 1 *",
	"@monthly":  "0 0 0 1 * *",
	"@weekly":   "0 0 0 * * 0",
	"@daily":    "0 0 0 * * *",
	"@midnight": "0 0 0 * * *",
	"@hourly":   "0 0 * * * *",
}

// timetable is a parsed schedule: every is set for "@every D", cron and
// loc for the rest.
type timetable struct {
	every time.Duration
	cron  cron.Schedule
	loc   *time.Location
}

// parseTimetable reads s by nats-server's rules (parseMsgSchedule): "@every
// D" with D at least 1s and no time zone; a descriptor; or 6 cron fields in
// s.TimeZone (default UTC) that match some time within five years of now.
// Its error says why nats-server would refuse s.
func parseTimetable(s clientsdk.Schedule, now time.Time) (timetable, error) {
	if msg := s.Check(); msg != "" {
		return timetable{}, errors.New(msg)
	}
	loc := time.UTC
	if s.TimeZone != "" {
		var err error
		if loc, err = time.LoadLocation(s.TimeZone); err != nil {
			return timetable{}, fmt.Errorf("time zone %q is not known to this server", s.TimeZone)
		}
	}
	if d, ok := strings.CutPrefix(s.Cron, "@every "); ok {
		every, err := time.ParseDuration(d)
		if err != nil || every < time.Second || s.TimeZone != "" {
			return timetable{}, errors.New("@every with a duration of at least 1s and no time zone")
		}
		return timetable{every: every}, nil
	}
	expr := s.Cron
	if e, ok := descriptors[expr]; ok {
		expr = e
	}
	if strings.HasPrefix(expr, "@") || strings.Contains(expr, "=") {
		return timetable{}, errors.New("@every D, @hourly, @daily, @weekly, @monthly, @yearly, or 6 cron fields")
	}
	c, err := cronParser.Parse(expr)
	if err != nil {
		return timetable{}, fmt.Errorf("not a 6-field cron expression (second minute hour day month weekday): %v", err)
	}
	if c.Next(now.In(loc)).IsZero() {
		return timetable{}, errors.New("a cron expression that matches a time within five years")
	}
	return timetable{cron: c, loc: loc}, nil
}

// next returns when t fires after now. A cron timetable fires at its next
// matching second. "@every D" fires, as nats-server does, on a grid laid
// from the time its message was stored, rounded to the second: stored+D,
// stored+2D, … (a tick that comes late moves the grid; the tick's
// Nats-Schedule-Next header then says, see nextFire).
func (t timetable) next(stored, now time.Time) time.Time {
	if t.every <= 0 {
		return t.cron.Next(now.In(t.loc)).UTC()
	}
	base := stored.UTC().Round(time.Second)
	if stored.IsZero() || now.Before(base) {
		return base.Add(t.every)
	}
	return base.Add((now.Sub(base)/t.every + 1) * t.every)
}

// nextFire returns when a schedule fires next: what its last tick said
// (lastNext, from the Nats-Schedule-Next header of a tick of the schedule's
// current message) while that is still ahead, else t.next.
func nextFire(t timetable, stored, lastNext, now time.Time) time.Time {
	if lastNext.After(now) {
		return lastNext.UTC()
	}
	return t.next(stored, now)
}

// checkSchedules refuses (400 InvalidSpec) a lambda's schedule that
// nats-server would refuse when dartup stores it, so that a push says so
// rather than the server log.
func checkSchedules(spec clientsdk.AppSpec, now time.Time) error {
	if spec.Lambda == nil {
		return nil
	}
	for i, s := range spec.Lambda.Schedules {
		if _, err := parseTimetable(s, now); err != nil {
			return clientsdk.Errorf(400, clientsdk.TypeInvalidSpec, "app %s: lambda.schedules[%d] (--schedule) is %q; allowed %v", spec.Name, i, s.Cron, err)
		}
	}
	return nil
}
