package runner

import (
	"errors"
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
		case effReplace:
			out = append(out, "replace "+e.grace.String())
		case effStop:
			out = append(out, "stop "+e.grace.String())
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
			{event{kind: evSpec, spec: newer}, []string{"start"}, phaseStarting},
		}},
		{"a server that does not answer is retried like a crash", plain, []step{
			{event{kind: evStartFailed, err: errors.New("timeout"), transient: true}, []string{"status backoff", "wait 100ms"}, phaseBackoff},
			{event{kind: evTimer}, []string{"event restarted", "start"}, phaseStarting},
		}},
		{"a start cut short by a stop waits for the stop quietly", plain, []step{
			{event{kind: evStartFailed, err: errors.New("canceled"), aborted: true}, nil, phaseIdle},
			{event{kind: evStop, reason: stopRemoved}, nil, phaseDone},
		}},
		{"a material spec change replaces the worker, new one first", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evSpec, spec: newer}, []string{"replace 5s"}, phaseStarting},
			{started, []string{"status running", "event started"}, phaseRunning},
		}},
		{"scaling does not replace a running worker", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evSpec, spec: scaled}, []string{"status running"}, phaseRunning},
		}},
		{"the same revision again changes nothing", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evSpec, spec: plain}, nil, phaseRunning},
		}},
		{"a new spec during backoff starts at once", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, time.Millisecond), []string{"reap", "event crashed", "event restarted", "start"}, phaseStarting},
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, time.Millisecond), []string{"reap+drain", "event crashed", "status backoff", "wait 100ms"}, phaseBackoff},
			{event{kind: evSpec, spec: newer}, []string{"start"}, phaseStarting},
		}},
		{"kill: stopping is written, then stopped", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evStop, reason: stopKilled}, []string{"status stopping", "stop 5s"}, phaseStopping},
			{event{kind: evSpec, spec: newer}, nil, phaseStopping},
			{event{kind: evStopped, exit: proc.Exit{Code: -1, Signal: "SIGTERM"}}, []string{"status stopped", "event killed"}, phaseDone},
		}},
		{"remove: stopped without a status of its own", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{event{kind: evStop, reason: stopRemoved}, []string{"stop 5s"}, phaseStopping},
			{event{kind: evStopped}, nil, phaseDone},
		}},
		{"a stop during backoff ends at once", plain, []step{
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, time.Millisecond), []string{"reap", "event crashed", "event restarted", "start"}, phaseStarting},
			{started, []string{"status running", "event started"}, phaseRunning},
			{exited(1, time.Millisecond), []string{"reap+drain", "event crashed", "status backoff", "wait 100ms"}, phaseBackoff},
			{event{kind: evStop, reason: stopShutdown}, []string{"status stopped", "event killed"}, phaseDone},
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
