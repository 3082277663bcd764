package clientsdk

import (
	"context"
	"time"
)

// VerbSchedules lists the lambdas' schedules: "dartup.api.schedules".
const VerbSchedules = "schedules" // dartup.api.schedules

// What a scheduled event says of itself (ScheduledEvent's fields), as
// EventBridge's scheduled events do.
const (
	ScheduledEventVersion    = "0"
	ScheduledEventDetailType = "Scheduled Event"
	ScheduledEventSource     = "dartup.scheduler"
)

// NewScheduledEvent returns the event of schedule index of lambda name as
// dartup stores it in the schedule's message: Time and ID are left empty
// (the dispatcher fills them for each tick from the tick's headers).
func NewScheduledEvent(name string, index int, s Schedule) ScheduledEvent {
	e := ScheduledEvent{Version: ScheduledEventVersion, DetailType: ScheduledEventDetailType,
		Source: ScheduledEventSource, Resources: []string{ScheduleSubject(name, index)}}
	e.Detail.Schedule, e.Detail.TimeZone = s.Cron, s.TimeZone
	return e
}

// ScheduleState says whether a schedule fires.
type ScheduleState string

// Schedule states.
const (
	// ScheduleActive: the server fires it.
	ScheduleActive ScheduleState = "active"
	// SchedulePaused: its lambda is killed; `dartup start` resumes it.
	SchedulePaused ScheduleState = "paused"
	// SchedulePending: the spec has it but the schedules stream does not
	// hold it (yet): the servers write it within moments, or it was
	// refused (see the server log).
	SchedulePending ScheduleState = "pending"
)

// ScheduleInfo is one schedule of a lambda, as the schedules verb (`dartup
// schedules`) and the describe verb (`dartup info NAME`) list it.
type ScheduleInfo struct {
	// App is the lambda; Index the schedule's place in its spec.
	App   string `json:"app"`
	Index int    `json:"index"`
	// Subject holds the schedule's message: "dartup.schedules.APP.INDEX".
	Subject string `json:"subject"`
	// Schedule and TimeZone are as pushed (Schedule.Cron, Schedule.TimeZone).
	Schedule string        `json:"schedule"`
	TimeZone string        `json:"time_zone,omitempty"`
	State    ScheduleState `json:"state"`
	// Next is when it fires next (zero, left out, unless active).
	Next time.Time `json:"next,omitzero"`
	// Last is when it last fired, when the stream still holds that tick.
	Last time.Time `json:"last,omitzero"`
}

// SchedulesResponse is the answer of the schedules verb.
type SchedulesResponse struct {
	// Schedules are by app, then index.
	Schedules []ScheduleInfo `json:"schedules"`
}

// Schedules returns every lambda's schedules with their state and next fire
// time. Errors: as List.
func (c *Client) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	var r SchedulesResponse
	if err := c.call(ctx, VerbSchedules, nil, &r); err != nil {
		return nil, err
	}
	if r.Schedules == nil {
		r.Schedules = []ScheduleInfo{}
	}
	return r.Schedules, nil
}
