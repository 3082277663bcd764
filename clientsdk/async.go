package clientsdk

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Async invocations, dead letters and schedules (docs/events.md).
const (
	// AsyncStream stores Event (async) invocations until a lambda has run
	// them: subjects "dartup.async.NAME", work-queue retention (an event is
	// deleted once acknowledged), new events refused when full.
	AsyncStream = "DARTUP_ASYNC"
	// AsyncPrefix is the subject prefix of async invocations.
	AsyncPrefix = "dartup.async"
	// DLQStream holds the async invocations that exhausted their retries or
	// their age: subjects "dartup.dlq.NAME", with their attempts, last error
	// and times in headers.
	DLQStream = "DARTUP_DLQ"
	// DLQPrefix is the subject prefix of dead letters.
	DLQPrefix = "dartup.dlq"
	// SchedulesStream holds the lambdas' schedules as JetStream message
	// schedules (ADR-51) on "dartup.schedules.NAME.INDEX", which the
	// server fires once per cluster onto "dartup.ticks.NAME"; AsyncStream
	// sources the ticks as async invocations of NAME.
	SchedulesStream = "DARTUP_SCHEDULES"
	// SchedulesPrefix and TicksPrefix are the subject prefixes of schedule
	// definitions and of their ticks.
	SchedulesPrefix = "dartup.schedules"
	TicksPrefix     = "dartup.ticks"
)

// Headers of async invocations and dead letters.
const (
	// HeaderRequestID carries an async invocation's request id: set by
	// the client that stores the event (Client.InvokeAsync, the gateway,
	// `dartup invoke --async`), kept across attempts, and passed to the
	// worker as Lambda-Runtime-Aws-Request-Id so that a function can be
	// idempotent. Also the JetStream message id (a client's retry of the
	// same publish is stored once).
	HeaderRequestID = "Dartup-Request-Id"
	// HeaderAttempts, HeaderError, HeaderErrorType, HeaderFirstAttempt,
	// HeaderLastAttempt and HeaderEnqueued describe a dead letter.
	HeaderAttempts     = "Dartup-Attempts"
	HeaderError        = "Dartup-Error"
	HeaderErrorType    = "Dartup-Error-Type"
	HeaderFirstAttempt = "Dartup-First-Attempt"
	HeaderLastAttempt  = "Dartup-Last-Attempt"
	HeaderEnqueued     = "Dartup-Enqueued"
	// HeaderHops counts how many outcomes in a row led to an async event
	// (a destination dartup.async.OTHER makes one more): the dispatcher
	// sends no outcome to another lambda past MaxAsyncHops, so lambdas
	// whose destinations call each other stop instead of looping.
	HeaderHops = "Dartup-Hops"
)

// MaxAsyncHops bounds a chain of async destinations (see HeaderHops).
const MaxAsyncHops = 8

// AsyncSubject returns the subject that stores an async invocation of
// lambda name: "dartup.async.NAME".
func AsyncSubject(name string) string { return AsyncPrefix + "." + name }

// DLQSubject returns the dead-letter subject of lambda name: "dartup.dlq.NAME".
func DLQSubject(name string) string { return DLQPrefix + "." + name }

// ScheduleSubject returns the subject of schedule index of lambda name:
// "dartup.schedules.NAME.INDEX".
func ScheduleSubject(name string, index int) string {
	return fmt.Sprintf("%s.%s.%d", SchedulesPrefix, name, index)
}

// TickSubject returns the subject a lambda's schedules fire onto:
// "dartup.ticks.NAME".
func TickSubject(name string) string { return TicksPrefix + "." + name }

// AsyncSpec holds how a lambda's async invocations are retried and where
// their outcomes go. Zero fields take the defaults (WithDefaults).
type AsyncSpec struct {
	// Retries is how many times a failed event is tried again (default 2,
	// as AWS Lambda; 0 for none).
	Retries *int `json:"retries,omitempty"`
	// RetryBackoff are the waits before each retry; the last repeats.
	// Default 1s, 10s, 60s.
	RetryBackoff []Duration `json:"retry_backoff,omitempty"`
	// MaxEventAge bounds how long an event may wait and be retried before
	// it goes to the dead letters. Default 6h.
	MaxEventAge Duration `json:"max_event_age,omitempty"`
	// OnSuccess and OnFailure are subjects that receive, as JSON
	// (AsyncOutcome), the result or error of each event with the event.
	OnSuccess string `json:"on_success,omitempty"`
	OnFailure string `json:"on_failure,omitempty"`
}

// Schedule fires a lambda on a timetable, as an async invocation whose
// event says the schedule and the time (ScheduledEvent).
type Schedule struct {
	// Cron is "@every 30s" (at least 1s), a 6-field cron expression with
	// seconds ("0 */5 * * * *"), or @hourly, @daily, @weekly, @monthly,
	// @yearly.
	Cron string `json:"cron"`
	// TimeZone is an IANA zone for cron expressions ("Europe/Berlin");
	// default UTC. @every takes none.
	TimeZone string `json:"time_zone,omitempty"`
}

// ScheduledEvent is the event of a schedule's tick, shaped like an
// EventBridge scheduled event.
type ScheduledEvent struct {
	Version    string    `json:"version"`
	ID         string    `json:"id"`
	DetailType string    `json:"detail-type"`
	Source     string    `json:"source"`
	Time       time.Time `json:"time"`
	Resources  []string  `json:"resources"`
	Detail     struct {
		Schedule string `json:"schedule"`
		TimeZone string `json:"time_zone,omitempty"`
	} `json:"detail"`
}

// AsyncOutcome is what an on-success or on-failure destination receives.
type AsyncOutcome struct {
	RequestID string    `json:"request_id"`
	Function  string    `json:"function"`
	Success   bool      `json:"success"`
	Attempts  int       `json:"attempts"`
	Enqueued  time.Time `json:"enqueued"`
	// Result is the function's answer (on success), Error what failed;
	// Event is the event. Each is the JSON the function took or gave, or a
	// JSON string when it was not JSON.
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
	Event  json.RawMessage `json:"event"`
}

// Defaults and bounds of AsyncSpec and schedules.
const (
	DefaultRetries     = 2
	DefaultMaxEventAge = 6 * time.Hour
	MaxRetries         = 100
	MaxBackoffSteps    = 16
	MaxBackoff         = 12 * time.Hour
	MinMaxEventAge     = time.Second
	MaxMaxEventAge     = 7 * 24 * time.Hour
	MaxSchedules       = 16
	MaxScheduleLength  = 256
)

// DefaultRetryBackoff is the wait before each retry when none is given.
var DefaultRetryBackoff = []Duration{Duration(time.Second), Duration(10 * time.Second), Duration(time.Minute)}

// withDefaults fills an AsyncSpec's zero fields.
func (a AsyncSpec) withDefaults() AsyncSpec {
	if a.Retries == nil {
		n := DefaultRetries
		a.Retries = &n
	}
	if len(a.RetryBackoff) == 0 {
		a.RetryBackoff = append([]Duration(nil), DefaultRetryBackoff...)
	}
	if a.MaxEventAge == 0 {
		a.MaxEventAge = Duration(DefaultMaxEventAge)
	}
	return a
}

// Backoff returns the wait before retry n (1 for the first retry).
func (a AsyncSpec) Backoff(n int) time.Duration {
	b := a.withDefaults().RetryBackoff
	return b[min(max(n, 1), len(b))-1].D()
}

// CheckDestination says what is wrong with an on-success or on-failure
// subject, or "": a plain publish subject that is not dartup's own or
// JetStream's (dartup publishes there with the server's rights), except
// dartup.async.NAME (another lambda's async invocation).
func CheckDestination(s string) string {
	switch {
	case s == "":
		return ""
	case len(s) > MaxScheduleLength:
		return fmt.Sprintf("over %d bytes", MaxScheduleLength)
	case strings.ContainsAny(s, " \t\r\n*>\x00") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, ".."):
		return "a subject without spaces or wildcards, e.g. orders.done"
	case strings.HasPrefix(s, "$") || strings.HasPrefix(s, "_INBOX"):
		return "a subject outside $JS, $SYS, $KV… and _INBOX"
	case strings.HasPrefix(s, "dartup.") && !strings.HasPrefix(s, AsyncPrefix+"."):
		return "a subject outside dartup.* (dartup.async.NAME, another lambda's async invocation, is allowed)"
	case strings.HasPrefix(s, AsyncPrefix+".") && ValidateName(strings.TrimPrefix(s, AsyncPrefix+".")) != nil:
		return "dartup.async.NAME with NAME a lambda's name (one token)"
	}
	return ""
}

// Check says what is wrong with s, or "" (the server checks a cron
// expression's fields fully when it stores the schedule).
func (s Schedule) Check() string {
	c := strings.TrimSpace(s.Cron)
	switch {
	case c == "":
		return "a schedule: @every 30s, a 6-field cron expression (0 */5 * * * *), or @hourly/@daily/@weekly/@monthly/@yearly"
	case len(c) > MaxScheduleLength || len(s.TimeZone) > MaxScheduleLength:
		return fmt.Sprintf("at most %d bytes", MaxScheduleLength)
	case c != s.Cron:
		return "no spaces around it"
	}
	if s.TimeZone != "" {
		if _, err := time.LoadLocation(s.TimeZone); err != nil || s.TimeZone == "Local" {
			return fmt.Sprintf("a known IANA time zone such as Europe/Berlin (%q is not one)", s.TimeZone)
		}
	}
	if d, ok := strings.CutPrefix(c, "@every "); ok {
		v, err := time.ParseDuration(d)
		switch {
		case err != nil || v < time.Second:
			return "@every with a duration of at least 1s, e.g. @every 30s"
		case s.TimeZone != "":
			return "@every takes no time zone (give a cron expression for times of day)"
		}
		return ""
	}
	switch c {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return ""
	}
	fields := strings.Fields(c)
	if len(fields) != 6 {
		return fmt.Sprintf("6 cron fields with seconds first (second minute hour day month weekday, e.g. 0 */5 * * * *); it has %d", len(fields))
	}
	for _, f := range fields {
		if strings.Trim(f, "0123456789*/,-?LW#ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
			return fmt.Sprintf("cron field %q holds a character cron does not know", f)
		}
	}
	return ""
}
