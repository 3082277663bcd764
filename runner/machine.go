package runner

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
)

// phase is where an instance supervisor is.
type phase int

const (
	phaseStarting phase = iota // resolving and spawning a worker
	phaseRunning               // a worker is alive
	phaseBackoff               // the worker exited; waiting to start it again
	phaseIdle                  // no worker: exited, errored, or its start was cut short; waiting for a new spec or a stop
	phaseStopping              // stopping the worker on request
	phaseDone                  // finished: the supervisor ends
)

// eventKind says what happened to a supervisor.
type eventKind int

const (
	evStarted     eventKind = iota // the worker started (pid, started)
	evStartFailed                  // it could not start (err; transient; aborted by a stop)
	evExited                       // the worker exited on its own (exit, uptime)
	evTimer                        // the backoff delay is over
	evSpec                         // a newer spec arrived (spec)
	evStop                         // a stop was requested (reason)
	evStopped                      // the worker stopped on request (exit)
	evSample                       // CPU and memory were sampled
)

// event is one thing that happened, with what the machine needs to know.
type event struct {
	kind      eventKind
	pid       int
	started   time.Time
	err       error
	transient bool // the start failed because the server did not answer
	aborted   bool // the start was cut short by a stop request
	exit      proc.Exit
	uptime    time.Duration
	spec      clientsdk.AppSpec
	reason    stopReason
	cpu       float64
	mem       uint64
}

// effectKind is something the supervisor must do.
type effectKind int

const (
	effStart   effectKind = iota // start a worker for the machine's spec
	effReplace                   // start a worker for the new spec, then stop the old one (grace)
	effStop                      // stop the worker (grace)
	effReap                      // the worker exited: kill what is left of its group, forget its pid (drain: wait for its last lines)
	effWait                      // wait delay, then evTimer
	effStatus                    // write the machine's status
	effEvent                     // publish a lifecycle event (event, msg)
)

// effect is one thing to do, in order.
type effect struct {
	kind  effectKind
	grace time.Duration
	delay time.Duration
	drain bool
	event clientsdk.EventKind
	msg   string
}

// machine is an instance supervisor's state and its decisions, without any
// effect of its own: on takes an event and returns what to do. Spec changes
// and stop requests are handled in one place (onSpec, onStop) whatever the
// phase. It is not safe for concurrent use.
type machine struct {
	phase   phase
	spec    clientsdk.AppSpec
	tracker *Tracker
	status  clientsdk.InstanceStatus
	// stopping is why the worker is being stopped (phaseStopping).
	stopping stopReason
}

// newMachine returns a machine for instance index of spec on node, and the
// effects that begin it (a first start).
func newMachine(node string, index int, spec clientsdk.AppSpec) (*machine, []effect) {
	m := &machine{phase: phaseStarting, spec: spec, tracker: NewTracker(PolicyFrom(spec.Restart)),
		status: clientsdk.InstanceStatus{App: spec.Name, Instance: index, Node: node, SpecRevision: spec.Revision, State: clientsdk.StateStarting}}
	return m, []effect{{kind: effStart}}
}

// on returns the effects of ev at now.
func (m *machine) on(ev event, now time.Time) []effect {
	switch ev.kind {
	case evSpec:
		return m.onSpec(ev.spec)
	case evStop:
		return m.onStop(ev.reason)
	case evStarted:
		return m.onStarted(ev)
	case evStartFailed:
		return m.onStartFailed(ev, now)
	case evExited:
		return m.onExited(ev, now)
	case evTimer:
		if m.phase != phaseBackoff {
			return nil
		}
		m.phase = phaseStarting
		return []effect{{kind: effEvent, event: clientsdk.EventRestarted, msg: fmt.Sprintf("restart %d", m.status.Restarts)}, {kind: effStart}}
	case evStopped:
		return m.finish(m.stopping, &ev.exit)
	case evSample:
		if m.phase != phaseRunning {
			return nil
		}
		m.status.CPUPercent, m.status.MemoryBytes = ev.cpu, ev.mem
		return []effect{{kind: effStatus}}
	}
	return nil
}

// onSpec takes a newer spec: nothing for the same revision; only a status
// update when nothing that changes how a worker runs changed; otherwise a
// fresh restart policy and a new worker — at once when none runs, started
// before the old one stops when one does.
func (m *machine) onSpec(ns clientsdk.AppSpec) []effect {
	if ns.Revision == m.spec.Revision || m.phase == phaseStopping || m.phase == phaseDone {
		return nil
	}
	old := m.spec
	m.spec = ns
	if !material(old, ns) {
		m.status.SpecRevision = ns.Revision
		if m.phase == phaseRunning {
			return []effect{{kind: effStatus}}
		}
		if m.phase != phaseIdle && m.phase != phaseBackoff {
			return nil
		}
	}
	m.tracker = NewTracker(PolicyFrom(ns.Restart))
	m.status.QuickExits = 0
	switch m.phase {
	case phaseRunning:
		m.phase = phaseStarting
		return []effect{{kind: effReplace, grace: old.Restart.KillTimeout.D()}}
	case phaseBackoff, phaseIdle:
		m.phase = phaseStarting
		return []effect{{kind: effStart}}
	}
	return nil // phaseStarting: the start in progress uses the spec it had; the next start uses this one
}

// onStop ends the supervisor: a running worker is stopped first.
func (m *machine) onStop(reason stopReason) []effect {
	switch m.phase {
	case phaseRunning:
		m.phase = phaseStopping
		m.status.State = clientsdk.StateStopping
		out := []effect{{kind: effStop, grace: m.spec.Restart.KillTimeout.D()}}
		if reason == stopKilled {
			out = append([]effect{{kind: effStatus}}, out...)
		}
		m.stopping = reason
		return out
	case phaseStopping, phaseDone:
		return nil
	}
	return m.finish(reason, nil)
}

// onStarted: a worker runs (for a first start, a restart, or a replacement).
func (m *machine) onStarted(ev event) []effect {
	if m.phase != phaseStarting {
		return nil
	}
	m.phase = phaseRunning
	st := &m.status
	st.State, st.PID, st.StartedAt, st.LastError, st.SpecRevision = clientsdk.StateRunning, ev.pid, ev.started.UTC(), "", m.spec.Revision
	st.CPUPercent, st.MemoryBytes, st.NextRestartAt = 0, 0, time.Time{}
	return []effect{{kind: effStatus}, {kind: effEvent, event: clientsdk.EventStarted, msg: fmt.Sprintf("pid %d", ev.pid)}}
}

// onStartFailed: a start cut short by a stop waits for that stop; a server
// that did not answer counts as a crash (retried with backoff, ended by the
// crash-loop guard); anything else (a missing runtime, an unreadable file)
// is errored until a new spec or a restart of the node.
func (m *machine) onStartFailed(ev event, now time.Time) []effect {
	if m.phase != phaseStarting {
		return nil
	}
	st := &m.status
	st.PID = 0
	switch {
	case ev.aborted:
		m.phase = phaseIdle
		return nil
	case ev.transient:
		d := m.tracker.OnExit(-1, "", 0)
		if d.Restart {
			delay := max(d.Delay, 100*time.Millisecond)
			m.phase = phaseBackoff
			st.State, st.LastError, st.Restarts = clientsdk.StateBackoff, ev.err.Error(), st.Restarts+1
			st.NextRestartAt = now.Add(delay).UTC()
			return []effect{{kind: effStatus}, {kind: effWait, delay: delay}}
		}
	}
	m.phase = phaseIdle
	st.State, st.LastError, st.NextRestartAt = clientsdk.StateErrored, ev.err.Error(), time.Time{}
	return []effect{{kind: effStatus}, {kind: effEvent, event: clientsdk.EventErrored, msg: ev.err.Error()}}
}

// onExited decides, by the restart policy, what follows a worker's exit.
func (m *machine) onExited(ev event, now time.Time) []effect {
	if m.phase != phaseRunning {
		return nil
	}
	st := &m.status
	code := ev.exit.Code
	st.LastExitCode, st.LastSignal, st.PID = &code, ev.exit.Signal, 0
	st.CPUPercent, st.MemoryBytes = 0, 0
	d := m.tracker.OnExit(ev.exit.Code, ev.exit.Signal, ev.uptime)
	st.QuickExits = m.tracker.QuickExits()
	kind := clientsdk.EventExited
	if ev.exit.Code != 0 || ev.exit.Signal != "" {
		kind = clientsdk.EventCrashed
	}
	out := []effect{
		{kind: effReap, drain: !d.Restart || d.Delay > 0},
		{kind: effEvent, event: kind, msg: fmt.Sprintf("%s after %s", ev.exit, ev.uptime.Round(time.Millisecond))},
	}
	if !d.Restart {
		m.phase = phaseIdle
		st.State, st.LastError, st.NextRestartAt = d.State, "", time.Time{}
		out = append(out, effect{kind: effStatus})
		if d.State == clientsdk.StateErrored {
			st.LastError = d.Reason
			out = append(out, effect{kind: effEvent, event: clientsdk.EventErrored, msg: d.Reason})
		}
		return out
	}
	st.Restarts++
	if d.Delay == 0 {
		m.phase = phaseStarting
		st.State = clientsdk.StateStarting
		return append(out, effect{kind: effEvent, event: clientsdk.EventRestarted, msg: fmt.Sprintf("restart %d", st.Restarts)}, effect{kind: effStart})
	}
	m.phase = phaseBackoff
	st.State, st.NextRestartAt = clientsdk.StateBackoff, now.Add(d.Delay).UTC()
	return append(out, effect{kind: effStatus}, effect{kind: effWait, delay: d.Delay})
}

// finish ends the supervisor after a stop: a kill or a shutdown leaves the
// instance stopped (in its status); other reasons leave the status to the
// runner (it deletes it for a removed or scaled-down instance; another node
// writes it for a moved one).
func (m *machine) finish(reason stopReason, ex *proc.Exit) []effect {
	m.phase = phaseDone
	st := &m.status
	st.PID, st.NextRestartAt, st.CPUPercent, st.MemoryBytes = 0, time.Time{}, 0, 0
	if ex != nil {
		code := ex.Code
		st.LastExitCode, st.LastSignal = &code, ex.Signal
	}
	if reason != stopKilled && reason != stopShutdown {
		return nil
	}
	st.State = clientsdk.StateStopped
	if reason == stopShutdown {
		st.LastError = "the node shut down"
	}
	return []effect{{kind: effStatus}, {kind: effEvent, event: clientsdk.EventKilled, msg: "stopped"}}
}

// material reports whether two specs differ in a way that needs a new worker.
func material(a, b clientsdk.AppSpec) bool {
	a.Revision, b.Revision = 0, 0
	a.PushedAt, b.PushedAt = time.Time{}, time.Time{}
	a.Stopped, b.Stopped = false, false
	// Scaling and placement do not change how one instance runs.
	a.Instances, b.Instances = 0, 0
	a.Constraints, b.Constraints = nil, nil
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) != string(jb)
}
