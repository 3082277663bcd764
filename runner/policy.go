package runner

import (
	"fmt"
	"slices"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// Backoff constants of the restart policy (PM2's exp_backoff_restart_delay).
const (
	BackoffFactor     = 1.5
	MaxBackoff        = 15 * time.Second
	BackoffResetAfter = 30 * time.Second
)

// Policy is a daemon's restart policy in the form the state machine uses.
type Policy struct {
	AutoRestart   bool
	MaxRestarts   int
	MinUptime     time.Duration
	BaseDelay     time.Duration
	StopExitCodes []int
}

// PolicyFrom converts a spec's restart settings (after WithDefaults).
func PolicyFrom(r clientsdk.RestartPolicy) Policy {
	return Policy{
		AutoRestart:   !r.NoAutoRestart,
		MaxRestarts:   r.MaxRestarts,
		MinUptime:     r.MinUptime.D(),
		BaseDelay:     r.RestartDelay.D(),
		StopExitCodes: r.StopExitCodes,
	}
}

// Decision is what to do after an instance exited.
type Decision struct {
	// Restart says whether to start the instance again, after Delay.
	Restart bool
	Delay   time.Duration
	// State is the instance's state until then (backoff, exited, stopped, errored).
	State clientsdk.InstanceState
	// Reason explains a decision not to restart.
	Reason string
}

// Tracker is the restart state machine of one instance. It is pure: it looks
// at exits and uptimes only, so it is tested without processes. The first
// restart after a stable run is immediate; further consecutive restarts wait
// BaseDelay ×1.5 per restart up to 15 s; a run of 30 s resets the backoff; more
// than MaxRestarts consecutive crashes each up less than MinUptime give up
// (state errored). A Tracker is not safe for concurrent use.
type Tracker struct {
	p Policy
	// consecutive counts restarts since the backoff was last reset.
	consecutive int
	// unstable counts consecutive exits that came before MinUptime.
	unstable int
	delay    time.Duration
}

// NewTracker returns a tracker for p.
func NewTracker(p Policy) *Tracker { return &Tracker{p: p} }

// QuickExits returns how many exits in a row came before MinUptime (the
// crash-loop count that reaching MaxRestarts ends).
func (t *Tracker) QuickExits() int { return t.unstable }

// OnExit decides what follows an exit with code (-1 when signalled) after uptime.
// killed says the exit was requested (stop), which never restarts.
func (t *Tracker) OnExit(code int, signal string, uptime time.Duration) Decision {
	how := fmt.Sprintf("exit code %d", code)
	if signal != "" {
		how = "killed by " + signal
	}
	if signal == "" && slices.Contains(t.p.StopExitCodes, code) {
		return Decision{State: clientsdk.StateExited, Reason: how + " is a stop exit code"}
	}
	if !t.p.AutoRestart {
		return Decision{State: clientsdk.StateExited, Reason: how + "; auto-restart is off"}
	}
	if uptime >= BackoffResetAfter {
		t.consecutive, t.delay = 0, 0
	}
	if uptime < t.p.MinUptime {
		t.unstable++
	} else {
		t.unstable = 0
	}
	if t.unstable > t.p.MaxRestarts {
		return Decision{State: clientsdk.StateErrored,
			Reason: fmt.Sprintf("crash loop: %s after %s, %d times in a row each up less than min_uptime %s; not restarting (fix it, then `dartup start`)",
				how, uptime.Round(time.Millisecond), t.unstable, t.p.MinUptime)}
	}
	t.consecutive++
	switch {
	case t.consecutive == 1:
		t.delay = 0
	case t.delay == 0:
		t.delay = t.p.BaseDelay
	default:
		t.delay = min(time.Duration(float64(t.delay)*BackoffFactor), MaxBackoff)
	}
	return Decision{Restart: true, Delay: t.delay, State: clientsdk.StateBackoff, Reason: how}
}
