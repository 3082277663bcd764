package runner

import (
	"cmp"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
)

// phase is where an instance supervisor is.
type phase int

const (
	phaseStarting  phase = iota // resolving and spawning a worker
	phaseRunning                // a worker is alive (ready or still being probed)
	phaseReplacing              // a worker serves while its replacement gets ready
	phaseBackoff                // the worker exited; waiting to start it again
	phaseIdle                   // no worker: exited, errored, or its start was cut short; waiting for a new spec or a stop
	phaseStopping               // stopping the worker on request
	phaseDone                   // finished: the supervisor ends
)

// eventKind says what happened to a supervisor.
type eventKind int

const (
	evStarted     eventKind = iota // a worker started (pid, started, addr; next: the replacement)
	evStartFailed                  // it could not start (err; transient; aborted by a stop; next)
	evExited                       // a worker exited on its own (exit, uptime; next)
	evTimer                        // the backoff delay is over
	evSpec                         // a newer spec arrived (spec)
	evStop                         // a stop was requested (reason)
	evStopped                      // the worker stopped on request (exit)
	evSample                       // CPU and memory were sampled
	evReady                        // a worker passed its readiness probe (pid; next)
	evNotReady                     // a worker did not get ready in time (pid, err; next)
	evUnhealthy                    // the worker failed its health checks (pid, err)
)

// event is one thing that happened, with what the machine needs to know.
type event struct {
	kind      eventKind
	pid       int
	started   time.Time
	addr      string
	next      bool // about the replacement worker of a rollout
	err       error
	transient bool // the start failed because the server did not answer
	aborted   bool // the start was cut short by a stop request
	exit      proc.Exit
	uptime    time.Duration
	spec      *clientsdk.AppSpec // evSpec; a pointer keeps events (and the supervisor's idle stack) small
	reason    stopReason
	cpu       float64
	mem       uint64
	cpuSec    float64 // the worker's CPU time so far
}

// effectKind is something the supervisor must do.
type effectKind int

const (
	effStart     effectKind = iota // start a worker for the machine's spec (the current one)
	effStartNext                   // start the replacement worker for the machine's spec
	effProbe                       // probe a worker (next: the replacement) until ready or its ready timeout
	effHealth                      // check the current worker's health until it fails
	effPromote                     // the replacement becomes the current worker; the current one retires
	effDemote                      // the current worker retires (a rollout that stops before it starts)
	effRetire                      // drain (when routed) and stop the retired worker (grace)
	effStopNext                    // stop the replacement worker (grace)
	effKill                        // stop the current worker; its exit comes as evExited (grace)
	effStop                        // drain (when routed) and stop the worker (grace); evStopped
	effReap                        // the worker exited: kill what is left of its group, forget its pid (drain: wait for its last lines)
	effWait                        // wait delay, then evTimer
	effStatus                      // write the machine's status
	effEvent                       // publish a lifecycle event (event, msg)
)

// effect is one thing to do, in order.
type effect struct {
	kind  effectKind
	grace time.Duration
	delay time.Duration
	drain bool // effReap: wait for the last lines; effStop, effRetire: drain the gateways first
	next  bool // effProbe: probe the replacement
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
	// prev is, during a rollout on this instance, the spec to go back to
	// when the new worker does not get ready.
	prev *clientsdk.AppSpec
	// next is the replacement worker (phaseReplacing), once started.
	next struct {
		pid     int
		started time.Time
		addr    string
	}
	// oldGone: phaseReplacing, and the worker being replaced has exited.
	oldGone bool
	// failing is why the machine is stopping the current worker (not ready
	// in time, unhealthy): its exit counts as a crash, for this reason.
	failing string
	// usageAt is when the CPU and memory figures were last written.
	usageAt time.Time
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
		return m.onSpec(*ev.spec)
	case evStop:
		return m.onStop(ev.reason)
	case evStarted:
		return m.onStarted(ev)
	case evStartFailed:
		return m.onStartFailed(ev, now)
	case evExited:
		return m.onExited(ev, now)
	case evReady:
		return m.onReady(ev)
	case evNotReady:
		return m.onNotReady(ev)
	case evUnhealthy:
		return m.onUnhealthy(ev)
	case evTimer:
		if m.phase != phaseBackoff {
			return nil
		}
		m.phase = phaseStarting
		return []effect{{kind: effEvent, event: clientsdk.EventRestarted, msg: fmt.Sprintf("restart %d", m.status.Restarts)}, {kind: effStart}}
	case evStopped:
		return m.finish(m.stopping, &ev.exit)
	case evSample:
		if m.phase != phaseRunning && m.phase != phaseReplacing {
			return nil
		}
		m.status.CPUSeconds = ev.cpuSec // written with the next status, whatever its cause
		if !usageWorthWriting(m.status.CPUPercent, m.status.MemoryBytes, ev.cpu, ev.mem, m.usageAt, now) {
			return nil
		}
		m.status.CPUPercent, m.status.MemoryBytes, m.usageAt = ev.cpu, ev.mem, now
		return []effect{{kind: effStatus}}
	}
	return nil
}

// onSpec takes a newer spec: nothing for the same revision; only a status
// update when nothing that changes how a worker runs changed; otherwise a
// fresh restart policy and a new worker. A worker that serves is replaced
// by a rollout: the new worker starts and gets ready before the old one is
// drained and stopped, or, with a fixed port, the old one is drained and
// stopped first; either way the old spec is kept to go back to. A worker
// that does not serve yet is simply replaced.
func (m *machine) onSpec(ns clientsdk.AppSpec) []effect {
	var out []effect
	if m.phase == phaseReplacing {
		if ns.Revision == m.spec.Revision {
			return nil
		}
		out = m.abandonNext()
		if m.phase != phaseRunning {
			return append(out, m.onSpec(ns)...)
		}
	}
	if ns.Revision == m.spec.Revision || m.phase == phaseStopping || m.phase == phaseDone {
		return out
	}
	old := m.spec
	m.spec = ns
	if !material(old, ns) {
		m.status.SpecRevision = ns.Revision
		if m.phase == phaseRunning {
			return append(out, effect{kind: effStatus})
		}
		if m.phase != phaseIdle && m.phase != phaseBackoff {
			return out
		}
	}
	m.tracker = NewTracker(PolicyFrom(ns.Restart))
	m.status.QuickExits, m.failing = 0, ""
	switch {
	case m.phase == phaseRunning && m.status.Ready && old.Port == 0 && ns.Port == 0:
		m.prev, m.phase, m.oldGone = &old, phaseReplacing, false
		return append(out, effect{kind: effStartNext})
	case m.phase == phaseRunning:
		if m.status.Ready {
			m.prev = &old // a fixed port: stop first, start after, go back if need be
		}
		drain := m.unroute()
		m.phase = phaseStarting
		return append(out, effect{kind: effStatus}, effect{kind: effDemote},
			effect{kind: effRetire, grace: old.Restart.KillTimeout.D(), drain: drain}, effect{kind: effStart})
	case m.phase == phaseBackoff, m.phase == phaseIdle:
		m.phase = phaseStarting
		return append(out, effect{kind: effStart})
	}
	return out // phaseStarting: the start in progress uses the spec it had; the next start uses this one
}

// unroute takes the current worker out of the routes (in the status, which
// the caller writes): it reports whether the worker was routed, so that the
// gateways must be drained before it is signalled.
func (m *machine) unroute() bool {
	was := m.status.Ready && m.status.Address != ""
	m.status.Ready = false
	return was
}

// abandonNext gives up a rollout in progress on this instance (a newer spec
// or a stop came): the replacement is stopped and the spec before is back.
func (m *machine) abandonNext() []effect {
	out := []effect{{kind: effStopNext, grace: m.spec.Restart.KillTimeout.D()}}
	m.spec, m.prev = *m.prev, nil
	m.phase = phaseRunning
	if m.oldGone {
		m.phase = phaseIdle
	}
	return out
}

// onStop ends the supervisor: a running worker is taken out of the routes,
// drained and stopped first.
func (m *machine) onStop(reason stopReason) []effect {
	var out []effect
	if m.phase == phaseReplacing {
		out = m.abandonNext()
	}
	switch m.phase {
	case phaseRunning:
		m.phase = phaseStopping
		drain := m.unroute() && reason != stopFenced
		m.status.State = clientsdk.StateStopping
		// A moved instance's status is its new node's to write now; at a
		// shutdown (when JetStream may be going too) only a routed instance
		// is written, to take it out of the routes.
		if reason == stopKilled || reason == stopRemoved || reason == stopScaled || (reason == stopShutdown && drain) {
			out = append(out, effect{kind: effStatus})
		}
		m.stopping = reason
		return append(out, effect{kind: effStop, grace: m.spec.Restart.KillTimeout.D(), drain: drain})
	case phaseStopping, phaseDone:
		return out
	}
	return append(out, m.finish(reason, nil)...)
}

// onStarted: a worker runs (for a first start, a restart, or a rollout).
func (m *machine) onStarted(ev event) []effect {
	if ev.next {
		if m.phase != phaseReplacing {
			return nil
		}
		m.next.pid, m.next.started, m.next.addr = ev.pid, ev.started.UTC(), ev.addr
		// Without a readiness probe, a replacement is ready once it has run
		// for its min_uptime: a new version that crashes at once never
		// takes over.
		return []effect{{kind: effProbe, next: true}}
	}
	if m.phase != phaseStarting {
		return nil
	}
	m.phase = phaseRunning
	st := &m.status
	st.State, st.PID, st.StartedAt, st.SpecRevision = clientsdk.StateRunning, ev.pid, ev.started.UTC(), m.spec.Revision
	st.CPUPercent, st.MemoryBytes, st.CPUSeconds, st.NextRestartAt, st.Address = 0, 0, 0, time.Time{}, ev.addr
	if st.FailedRevision <= m.spec.Revision { // keep why a newer revision failed
		st.LastError, st.FailedRevision = "", 0
	}
	// Without a probe a worker is ready at once, except the new worker of
	// a stop-first rollout (a fixed port): it must stay up for min_uptime
	// first, or the version before starts again.
	st.Ready = m.spec.ReadyProbe().Kind == clientsdk.ProbeNone && m.prev == nil
	out := []effect{{kind: effStatus}, {kind: effEvent, event: clientsdk.EventStarted, msg: fmt.Sprintf("pid %d", ev.pid)}}
	if !st.Ready {
		return append(out, effect{kind: effProbe})
	}
	m.prev = nil
	return append(out, m.health()...)
}

// health starts the health checks of the current worker, if the spec has any.
func (m *machine) health() []effect {
	if m.spec.HealthProbe().Kind == clientsdk.ProbeNone {
		return nil
	}
	return []effect{{kind: effHealth}}
}

// onReady: the current worker takes traffic, or the replacement takes over.
func (m *machine) onReady(ev event) []effect {
	switch {
	case ev.next && m.phase == phaseReplacing && ev.pid == m.next.pid:
		return m.promote()
	case !ev.next && m.phase == phaseRunning && ev.pid == m.status.PID && !m.status.Ready:
		m.status.Ready, m.prev = true, nil
		out := []effect{{kind: effStatus}, {kind: effEvent, event: clientsdk.EventReady, msg: fmt.Sprintf("pid %d at %s", ev.pid, m.status.Address)}}
		return append(out, m.health()...)
	}
	return nil
}

// promote makes the ready replacement the current worker: its status (and
// so the routes) points at it, then the old worker is drained and stopped.
func (m *machine) promote() []effect {
	grace := m.prev.Restart.KillTimeout.D()
	old, routed := m.status.PID, m.status.Ready && m.status.Address != ""
	m.prev, m.phase = nil, phaseRunning
	st := &m.status
	st.State, st.PID, st.StartedAt, st.Address, st.Ready = clientsdk.StateRunning, m.next.pid, m.next.started, m.next.addr, true
	st.SpecRevision, st.LastError, st.FailedRevision, st.CPUPercent, st.MemoryBytes, st.CPUSeconds = m.spec.Revision, "", 0, 0, 0, 0
	msg := fmt.Sprintf("pid %d", st.PID)
	if st.Address != "" {
		msg += " at " + st.Address
	}
	if !m.oldGone {
		msg += fmt.Sprintf(" replaces pid %d", old)
	}
	out := []effect{{kind: effPromote}, {kind: effStatus}, {kind: effEvent, event: clientsdk.EventReady, msg: msg},
		{kind: effRetire, grace: grace, drain: routed && !m.oldGone}}
	return append(out, m.health()...)
}

// onNotReady: a replacement that did not get ready stops the rollout; a
// current worker that did not is stopped, and its exit counts as a crash.
func (m *machine) onNotReady(ev event) []effect {
	switch {
	case ev.next && m.phase == phaseReplacing && ev.pid == m.next.pid:
		return m.rollback(ev.err.Error())
	case !ev.next && m.phase == phaseRunning && ev.pid == m.status.PID && !m.status.Ready:
		m.failing = ev.err.Error()
		return []effect{{kind: effKill, grace: m.spec.Restart.KillTimeout.D()}}
	}
	return nil
}

// onUnhealthy: the worker is taken out of the routes and stopped; its exit
// counts as a crash (a restart, under the backoff and crash-loop guard).
func (m *machine) onUnhealthy(ev event) []effect {
	if m.phase != phaseRunning || ev.pid != m.status.PID || !m.status.Ready {
		return nil
	}
	m.failing = "unhealthy: " + ev.err.Error()
	m.status.Ready = false
	return []effect{{kind: effStatus}, {kind: effEvent, event: clientsdk.EventUnhealthy, msg: ev.err.Error()},
		{kind: effKill, grace: m.spec.Restart.KillTimeout.D()}}
}

// rollback stops the rollout on this instance: the replacement is stopped,
// the spec before is back, and the status says which revision failed and
// why (the gate then holds the rollout on every other instance).
func (m *machine) rollback(why string) []effect {
	failed := m.spec
	out := m.abandonNext()
	m.failed(failed, why)
	out = append(out, effect{kind: effStatus}, effect{kind: effEvent, event: clientsdk.EventRolloutFailed, msg: m.status.LastError})
	if m.phase == phaseIdle { // the old worker exited meanwhile: start it again
		m.phase = phaseStarting
		out = append(out, effect{kind: effStart})
	}
	return out
}

// failed records in the status that the rollout of spec failed here.
func (m *machine) failed(spec clientsdk.AppSpec, why string) {
	m.status.FailedRevision = spec.Revision
	m.status.LastError = fmt.Sprintf("version %d did not get ready (%s); the rollout stopped and this instance still runs version %d", spec.Version, why, m.spec.Version)
}

// onStartFailed: a replacement that cannot start stops the rollout; for the
// current worker, a start cut short by a stop waits for that stop; a
// server that did not answer counts as a crash (retried with backoff, ended
// by the crash-loop guard); anything else (a missing runtime, an unreadable
// file) is errored until a new spec or a restart of the node.
func (m *machine) onStartFailed(ev event, now time.Time) []effect {
	if ev.next {
		if m.phase != phaseReplacing {
			return nil
		}
		return m.rollback("cannot start: " + ev.err.Error())
	}
	if m.phase != phaseStarting {
		return nil
	}
	st := &m.status
	st.PID, st.Ready, st.Address = 0, false, ""
	switch {
	case ev.aborted:
		m.phase = phaseIdle
		return nil
	case m.prev != nil:
		return m.goBack("cannot start: " + ev.err.Error())
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

// goBack ends a stop-first rollout (a fixed port) whose new worker failed:
// the spec before starts again.
func (m *machine) goBack(why string) []effect {
	failed := m.spec
	m.spec, m.prev = *m.prev, nil
	m.failed(failed, why)
	m.phase = phaseStarting
	m.status.State = clientsdk.StateStarting
	return []effect{{kind: effStatus}, {kind: effEvent, event: clientsdk.EventRolloutFailed, msg: m.status.LastError}, {kind: effStart}}
}

// onExited decides, by the restart policy, what follows a worker's exit. A
// replacement that exits stops the rollout; a worker being replaced that
// exits is only forgotten (its replacement takes over once ready).
func (m *machine) onExited(ev event, now time.Time) []effect {
	m.status.Exits = countExit(m.status.Exits, ev.exit)
	if ev.next {
		if m.phase != phaseReplacing {
			return nil
		}
		return m.rollback(fmt.Sprintf("exited before it was ready: %s", ev.exit))
	}
	st := &m.status
	if m.phase == phaseReplacing && !m.oldGone {
		m.oldGone = true
		code := ev.exit.Code
		st.LastExitCode, st.LastSignal, st.PID, st.Ready, st.State = &code, ev.exit.Signal, 0, false, clientsdk.StateStarting
		return []effect{{kind: effReap}, {kind: effEvent, event: clientsdk.EventCrashed, msg: fmt.Sprintf("%s while being replaced", ev.exit)},
			{kind: effStatus}}
	}
	if m.phase != phaseRunning {
		return nil
	}
	failing := m.failing
	m.failing = ""
	uptime := ev.uptime
	if failing != "" {
		uptime = 0 // not ready in time, or unhealthy: a crash
	}
	code, wasReady := ev.exit.Code, st.Ready
	st.LastExitCode, st.LastSignal, st.PID, st.Ready, st.Address = &code, ev.exit.Signal, 0, false, ""
	st.CPUPercent, st.MemoryBytes = 0, 0
	if m.prev != nil && (failing != "" || !wasReady) {
		// The new worker of a stop-first rollout failed before it was
		// ready (or had stayed up long enough): the version before again.
		why := cmp.Or(failing, fmt.Sprintf("exited before it was ready: %s", ev.exit))
		return append([]effect{{kind: effReap}}, m.goBack(why)...)
	}
	d := m.tracker.OnExit(ev.exit.Code, ev.exit.Signal, uptime)
	st.QuickExits = m.tracker.QuickExits()
	kind := clientsdk.EventExited
	if ev.exit.Code != 0 || ev.exit.Signal != "" || failing != "" {
		kind = clientsdk.EventCrashed
	}
	msg := fmt.Sprintf("%s after %s", ev.exit, ev.uptime.Round(time.Millisecond))
	if failing != "" {
		msg = failing + "; " + msg
	}
	out := []effect{{kind: effReap, drain: !d.Restart || d.Delay > 0}, {kind: effEvent, event: kind, msg: msg}}
	if !d.Restart {
		m.phase = phaseIdle
		st.State, st.LastError, st.NextRestartAt = d.State, failing, time.Time{}
		out = append(out, effect{kind: effStatus})
		if d.State == clientsdk.StateErrored {
			st.LastError = d.Reason
			if failing != "" {
				st.LastError += " (" + failing + ")"
			}
			out = append(out, effect{kind: effEvent, event: clientsdk.EventErrored, msg: st.LastError})
		}
		return out
	}
	st.Restarts++
	st.LastError = failing
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
	st.PID, st.NextRestartAt, st.CPUPercent, st.MemoryBytes, st.Ready, st.Address = 0, time.Time{}, 0, 0, false, ""
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
	// Scaling, placement, routing and the rollout's pace do not change how
	// one instance runs.
	a.Instances, b.Instances = 0, 0
	a.Constraints, b.Constraints = nil, nil
	if a.NeedsPort() != b.NeedsPort() {
		return true // the worker gets a PORT, or no longer does
	}
	a.HTTP, b.HTTP = nil, nil
	a.HTTPStripPrefix, b.HTTPStripPrefix = false, false
	a.Parallel, b.Parallel = 0, 0
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) != string(jb)
}
