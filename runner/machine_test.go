package runner

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
)

// describe renders effects for comparison: "start", "replace 5s", "stop 5s",
// "reap", "reap+drain", "wait 100ms", "status STATE", "event KIND".
func describe(m *machine, effects []effect) []string {
	var out []string
	for _, e := range effects {
		switch e.kind {
		case effStart:
			out = append(out, "start")
		case effStartNext:
			out = append(out, "start-next")
		case effProbe:
			if e.next {
				out = append(out, "probe-next")
			} else {
				out = append(out, "probe")
			}
		case effHealth:
			out = append(out, "health")
		case effPromote:
			out = append(out, "promote")
		case effDemote:
			out = append(out, "demote")
		case effRetire:
			out = append(out, fmt.Sprintf("retire %s drain=%v", e.grace, e.drain))
		case effStopNext:
			out = append(out, "stop-next")
		case effKill:
			out = append(out, "kill "+e.grace.String())
		case effStop:
			if e.drain {
				out = append(out, "stop+drain "+e.grace.String())
			} else {
				out = append(out, "stop "+e.grace.String())
			}
		case effReap:
			if e.drain {
				out = append(out, "reap+drain")
			} else {
				out = append(out, "reap")
			}
		case effWait:
			out = append(out, "wait "+e.delay.String())
		case effStatus:
			out = append(out, "status "+string(m.status.State))
		case effEvent:
			out = append(out, "event "+string(e.event))
		}
	}
	return out
}

func exited(code int, uptime time.Duration) event {
	return event{kind: evExited, exit: proc.Exit{Code: code}, uptime: uptime}
}

var started = event{kind: evStarted, pid: 42, started: t0}

// step is one event and the effects (as describe renders them) and phase
// it must lead to.
type step struct {
	ev    event
	want  []string
	phase phase
}

func runSteps(t *testing.T, spec clientsdk.AppSpec, steps []step) *machine {
	t.Helper()
	m, first := newMachine("n1", 0, spec)
	if got := describe(m, first); !slices.Equal(got, []string{"start"}) {
		t.Fatalf("begin: %v", got)
	}
	for i, s := range steps {
		got := describe(m, m.on(s.ev, t0))
		if !slices.Equal(got, s.want) || m.phase != s.phase {
			t.Fatalf("step %d (event %d): effects %v phase %d, want %v phase %d", i, s.ev.kind, got, m.phase, s.want, s.phase)
		}
	}
	return m
}

func specWith(mod func(*clientsdk.AppSpec)) clientsdk.AppSpec {
	return daemon("web", 1, mod)
}

func TestMachineTable(t *testing.T) {
	plain := specWith(func(*clientsdk.AppSpec) {})
	newer := specWith(func(s *clientsdk.AppSpec) { s.Revision = 8; s.Args = []string{"--v2"} })
	scaled := specWith(func(s *clientsdk.AppSpec) { s.Revision = 8; s.Instances = 3 })
	noRestart := specWith(func(s *clientsdk.AppSpec) { s.Restart.NoAutoRestart = true })
	for _, c := range []struct {
		name  string
		spec  clientsdk.AppSpec
		steps []step
	}{
		{"start, run, crash after a stable run: restart at once", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, time.Minute), []string{"reap", "event crashed", "event restarted", "start"}, phaseStarting},
			{started, []string{"status running", "event started"}, phaseRunning},
		}},
		{"a second quick crash waits the backoff", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, 10*time.Millisecond), []string{"reap", "event crashed", "event restarted", "start"}, phaseStarting},
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, 10*time.Millisecond), []string{"reap+drain", "event crashed", "status backoff", "wait 100ms"}, phaseBackoff},
			{event{kind: evTimer}, []string{"event restarted", "start"}, phaseStarting},
		}},
		{"no auto-restart: exited and idle", noRestart, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(0, time.Second), []string{"reap+drain", "event exited", "status exited"}, phaseIdle},
		}},
		{"a start that fails for good is errored until a new spec", plain, []step{
			{event{kind: evStartFailed, err: errors.New("/x/dart does not exist on node")}, []string{"status errored", "event errored"}, phaseIdle},
			{event{kind: evSpec, spec: &newer}, []string{"start"}, phaseStarting},
		}},
		{"a server that does not answer is retried like a crash", plain, []step{
			{event{kind: evStartFailed, err: errors.New("timeout"), transient: true}, []string{"status backoff", "wait 100ms"}, phaseBackoff},
			{event{kind: evTimer}, []string{"event restarted", "start"}, phaseStarting},
		}},
		{"a start cut short by a stop waits for the stop quietly", plain, []step{
			{event{kind: evStartFailed, err: errors.New("canceled"), aborted: true}, nil, phaseIdle},
			{event{kind: evStop, reason: stopRemoved}, nil, phaseDone},
		}},
		{"a material spec change rolls out: the new worker gets ready, then the old one retires", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evSpec, spec: &newer}, []string{"start-next"}, phaseReplacing},
			{startedNext, []string{"probe-next"}, phaseReplacing},
			{event{kind: evSample, cpu: 1}, []string{"status running"}, phaseReplacing},
			{event{kind: evReady, pid: 43, next: true}, []string{"promote", "status running", "event ready", "retire 5s drain=false"}, phaseRunning},
		}},
		{"scaling does not replace a running worker", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evSpec, spec: &scaled}, []string{"status running"}, phaseRunning},
		}},
		{"the same revision again changes nothing", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evSpec, spec: &plain}, nil, phaseRunning},
		}},
		{"a new spec during backoff starts at once", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, time.Millisecond), []string{"reap", "event crashed", "event restarted", "start"}, phaseStarting},
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, time.Millisecond), []string{"reap+drain", "event crashed", "status backoff", "wait 100ms"}, phaseBackoff},
			{event{kind: evSpec, spec: &newer}, []string{"start"}, phaseStarting},
		}},
		{"kill: stopping is written, then stopped", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evStop, reason: stopKilled}, []string{"status stopping", "stop 5s"}, phaseStopping},
			{event{kind: evSpec, spec: &newer}, nil, phaseStopping},
			{event{kind: evStopped, exit: proc.Exit{Code: -1, Signal: "SIGTERM"}}, []string{"status stopped", "event killed"}, phaseDone},
		}},
		{"remove: stopping is written, then the status is left to the runner", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evStop, reason: stopRemoved}, []string{"status stopping", "stop 5s"}, phaseStopping},
			{event{kind: evStopped}, nil, phaseDone},
		}},
		{"a stop during backoff ends at once", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, time.Millisecond), []string{"reap", "event crashed", "event restarted", "start"}, phaseStarting},
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, time.Millisecond), []string{"reap+drain", "event crashed", "status backoff", "wait 100ms"}, phaseBackoff},
			{event{kind: evStop, reason: stopShutdown}, []string{"status stopped", "event killed"}, phaseDone},
		}},
		{"a moved instance's status is its new node's: nothing is written", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evStop, reason: stopMoved}, []string{"stop 5s"}, phaseStopping},
		}},
		{"a sample updates a running worker's status only", plain, []step{
			{event{kind: evSample, cpu: 5}, nil, phaseStarting},
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evSample, cpu: 5, mem: 1 << 20}, []string{"status running"}, phaseRunning},
		}},
	} {
		t.Run(c.name, func(t *testing.T) { runSteps(t, c.spec, c.steps) })
	}
}

// A crash loop is visible from its first quick exit (QuickExits, the next
// try), and ends errored after max_restarts quick exits in a row.
func TestMachineCrashLoop(t *testing.T) {
	spec := specWith(func(s *clientsdk.AppSpec) { s.Restart.MaxRestarts = 3 })
	m, _ := newMachine("n1", 0, spec)
	for i := 1; i <= 3; i++ {
		m.on(started, t0)
		m.on(exited(7, 10*time.Millisecond), t0)
		if m.status.QuickExits != i || *m.status.LastExitCode != 7 || m.status.Restarts != i {
			t.Fatalf("after %d quick exits: %+v", i, m.status)
		}
		if i > 1 && (m.status.State != clientsdk.StateBackoff || !m.status.NextRestartAt.After(t0)) {
			t.Fatalf("after %d quick exits, not in backoff with a next try: %+v", i, m.status)
		}
		m.on(event{kind: evTimer}, t0)
	}
	m.on(started, t0)
	effects := describe(m, m.on(exited(7, 10*time.Millisecond), t0))
	if m.phase != phaseIdle || m.status.State != clientsdk.StateErrored || !strings.Contains(m.status.LastError, "crash loop: exit code 7") {
		t.Fatalf("after 4 quick exits: phase %d status %+v effects %v", m.phase, m.status, effects)
	}
	if !slices.Contains(effects, "event "+string(clientsdk.EventErrored)) {
		t.Fatalf("no errored event: %v", effects)
	}
}

var startedNext = event{kind: evStarted, pid: 43, started: t0, next: true, addr: "127.0.0.1:20002"}

// TestMachineRollouts: readiness, health, and the rollout of a new revision
// on one instance, with its failures.
func TestMachineRollouts(t *testing.T) {
	web := specWith(func(s *clientsdk.AppSpec) { s.HTTP = []clientsdk.HTTPRoute{{Prefix: "/"}}; s.Ready = "" })
	web = web.WithDefaults()
	v2 := web
	v2.Revision, v2.Version, v2.Args = 8, 2, []string{"--v2"}
	v3 := v2
	v3.Revision, v3.Version = 9, 3
	healthy := web
	healthy.Health, healthy.HealthFailures = "http:/healthz", 3
	fixed := web
	fixed.Port = 8080
	fixed2 := fixed
	fixed2.Revision, fixed2.Version, fixed2.Args = 8, 2, []string{"--v2"}
	fixedNoProbe := specWith(func(s *clientsdk.AppSpec) { s.Port = 8080 }).WithDefaults()
	fixedNoProbe2 := fixedNoProbe
	fixedNoProbe2.Revision, fixedNoProbe2.Version, fixedNoProbe2.Args = 8, 2, []string{"--v2"}
	up := event{kind: evStarted, pid: 42, started: t0, addr: "127.0.0.1:20001"}
	ready := event{kind: evReady, pid: 42}
	notReady := event{kind: evNotReady, pid: 42, err: errors.New("not ready after 1m0s: connection refused")}
	for _, c := range []struct {
		name  string
		spec  clientsdk.AppSpec
		steps []step
	}{
		{"an HTTP app takes traffic only once ready", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
		}},
		{"a worker that never gets ready is stopped, and that counts as a crash", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{notReady, []string{"kill 5s"}, phaseRunning},
			{exited(-1, time.Minute), []string{"reap", "event crashed", "event restarted", "start"}, phaseStarting},
		}},
		{"health checks start once ready; unhealthy: unrouted, stopped, restarted", healthy, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready", "health"}, phaseRunning},
			{event{kind: evUnhealthy, pid: 42, err: errors.New("3 failures")}, []string{"status running", "event unhealthy", "kill 5s"}, phaseRunning},
			{exited(-1, time.Hour), []string{"reap", "event crashed", "event restarted", "start"}, phaseStarting},
		}},
		{"a ready worker is drained on kill", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{event{kind: evStop, reason: stopKilled}, []string{"status stopping", "stop+drain 5s"}, phaseStopping},
		}},
		{"rollout: the replacement takes over once ready, the old one is drained", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{event{kind: evSpec, spec: &v2}, []string{"start-next"}, phaseReplacing},
			{startedNext, []string{"probe-next"}, phaseReplacing},
			{event{kind: evReady, pid: 43, next: true}, []string{"promote", "status running", "event ready", "retire 5s drain=true"}, phaseRunning},
		}},
		{"rollout: a replacement that never gets ready is stopped, the old one keeps serving", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{event{kind: evSpec, spec: &v2}, []string{"start-next"}, phaseReplacing},
			{startedNext, []string{"probe-next"}, phaseReplacing},
			{event{kind: evNotReady, pid: 43, next: true, err: errors.New("timeout")}, []string{"stop-next", "status running", "event rollout-failed"}, phaseRunning},
		}},
		{"rollout: a replacement that crashes is stopped, the old one keeps serving", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{event{kind: evSpec, spec: &v2}, []string{"start-next"}, phaseReplacing},
			{startedNext, []string{"probe-next"}, phaseReplacing},
			{event{kind: evExited, next: true, exit: proc.Exit{Code: 1}}, []string{"stop-next", "status running", "event rollout-failed"}, phaseRunning},
		}},
		{"rollout: a newer spec abandons the replacement and rolls out again", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{event{kind: evSpec, spec: &v2}, []string{"start-next"}, phaseReplacing},
			{event{kind: evSpec, spec: &v3}, []string{"stop-next", "start-next"}, phaseReplacing},
		}},
		{"rollout: a stop abandons the replacement and drains the old one", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{event{kind: evSpec, spec: &v2}, []string{"start-next"}, phaseReplacing},
			{event{kind: evStop, reason: stopRemoved}, []string{"stop-next", "status stopping", "stop+drain 5s"}, phaseStopping},
		}},
		{"rollout: the old worker dies meanwhile; the replacement takes over alone", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{event{kind: evSpec, spec: &v2}, []string{"start-next"}, phaseReplacing},
			{exited(1, time.Hour), []string{"reap", "event crashed", "status starting"}, phaseReplacing},
			{startedNext, []string{"probe-next"}, phaseReplacing},
			{event{kind: evReady, pid: 43, next: true}, []string{"promote", "status running", "event ready", "retire 5s drain=false"}, phaseRunning},
		}},
		{"rollout: the old worker died and the replacement failed: the old version starts again", web, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{event{kind: evSpec, spec: &v2}, []string{"start-next"}, phaseReplacing},
			{exited(1, time.Hour), []string{"reap", "event crashed", "status starting"}, phaseReplacing},
			{event{kind: evStartFailed, next: true, err: errors.New("no such file")}, []string{"stop-next", "status starting", "event rollout-failed", "start"}, phaseStarting},
		}},
		{"fixed port: the old worker is drained and stopped first; a new one that fails brings the old version back", fixed, []step{
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{event{kind: evSpec, spec: &fixed2}, []string{"status running", "demote", "retire 5s drain=true", "start"}, phaseStarting},
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{notReady, []string{"kill 5s"}, phaseRunning},
			{exited(-1, time.Minute), []string{"reap", "status starting", "event rollout-failed", "start"}, phaseStarting},
		}},
		{"fixed port, no probe: the new worker is ready only once it stayed up; one that exits before brings the old version back", fixedNoProbe, []step{
			{up, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evSpec, spec: &fixedNoProbe2}, []string{"status running", "demote", "retire 5s drain=true", "start"}, phaseStarting},
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{exited(1, 300*time.Millisecond), []string{"reap", "status starting", "event rollout-failed", "start"}, phaseStarting},
			{up, []string{"status running", "event started"}, phaseRunning},
		}},
		{"fixed port, no probe: a new worker that stays up takes over", fixedNoProbe, []step{
			{up, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evSpec, spec: &fixedNoProbe2}, []string{"status running", "demote", "retire 5s drain=true", "start"}, phaseStarting},
			{up, []string{"status running", "event started", "probe"}, phaseRunning},
			{ready, []string{"status running", "event ready"}, phaseRunning},
			{exited(1, time.Hour), []string{"reap", "event crashed", "event restarted", "start"}, phaseStarting},
		}},
	} {
		t.Run(c.name, func(t *testing.T) { runSteps(t, c.spec, c.steps) })
	}
}

// A failed rollout says which version failed and why, and the instance
// keeps the spec before.
func TestMachineRolloutFailureIsTold(t *testing.T) {
	web := specWith(func(s *clientsdk.AppSpec) { s.HTTP = []clientsdk.HTTPRoute{{Prefix: "/"}}; s.Version = 1 })
	v2 := web
	v2.Revision, v2.Version, v2.Args = 8, 2, []string{"--v2"}
	m, _ := newMachine("n1", 0, web)
	m.on(event{kind: evStarted, pid: 42, started: t0, addr: "h:1"}, t0)
	m.on(event{kind: evReady, pid: 42}, t0)
	m.on(event{kind: evSpec, spec: &v2}, t0)
	m.on(startedNext, t0)
	m.on(event{kind: evNotReady, pid: 43, next: true, err: errors.New("not ready after 1m0s: GET /healthz answered 503")}, t0)
	st := m.status
	if m.spec.Revision != web.Revision || st.FailedRevision != 8 || st.PID != 42 || !st.Ready || st.Address != "h:1" ||
		!strings.Contains(st.LastError, "version 2 did not get ready") || !strings.Contains(st.LastError, "answered 503") {
		t.Fatalf("after a failed rollout: spec rev %d, status %+v", m.spec.Revision, st)
	}
}
