package runner

import (
	"context"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/loglimit"
	"github.com/dartup/dartup/internal/proc"
)

type stopReason int

const (
	stopShutdown stopReason = iota // the runner is stopping
	stopKilled                     // `dartup kill`
	stopRemoved                    // `dartup remove`, or no longer a daemon
	stopScaled                     // instance index beyond the new count
	stopMoved                      // another node holds the claim now
	stopFenced                     // this node lost the server: others take over
)

// String names the reason, as logs and tests show it.
func (r stopReason) String() string {
	switch r {
	case stopShutdown:
		return "shutdown"
	case stopKilled:
		return "killed"
	case stopRemoved:
		return "removed"
	case stopScaled:
		return "scaled"
	case stopMoved:
		return "moved"
	case stopFenced:
		return "fenced"
	}
	return "unknown"
}

// UsageInterval is how often a running instance's CPU and memory are sampled.
const UsageInterval = 5 * time.Second

// instance supervises one daemon instance (APP.INDEX) on this node: it starts
// the worker, restarts it by the policy, replaces it on a new spec (new worker
// first, old stopped after), and stops it on request.
type instance struct {
	r     *Runner
	key   string
	app   string
	index int

	specCh chan clientsdk.AppSpec
	stopCh chan stopReason
	// ctx ends when a stop is requested, cancelling an artifact fetch.
	ctx    context.Context
	cancel context.CancelFunc
	// sentRev is the last spec revision handed over (guarded by Runner.mu).
	sentRev uint64
	done    chan struct{}
}

func newInstance(r *Runner, key, app string, index int) *instance {
	ctx, cancel := context.WithCancel(context.Background())
	return &instance{r: r, key: key, app: app, index: index, ctx: ctx, cancel: cancel,
		specCh: make(chan clientsdk.AppSpec, 1), stopCh: make(chan stopReason, 1), done: make(chan struct{})}
}

// updateSpec hands the supervisor a newer spec; only the latest is kept.
func (in *instance) updateSpec(s clientsdk.AppSpec) {
	select {
	case <-in.specCh:
	default:
	}
	in.specCh <- s
}

func (in *instance) requestStop(reason stopReason) {
	in.cancel() // a fetch in progress gives up at once
	select {
	case in.stopCh <- reason:
	default:
	}
}

// supervisor runs an instance's machine: it waits for the next event and
// carries out the machine's effects (spawning, stopping, status, events).
type supervisor struct {
	in    *instance
	m     *machine
	cur   *proc.Process
	usage usageSampler
	timer *time.Timer
}

// run supervises the instance until it is stopped.
func (in *instance) run(spec clientsdk.AppSpec) {
	defer close(in.done)
	m, effects := newMachine(in.r.nodeID, in.index, spec)
	s := &supervisor{in: in, m: m}
	sample := time.NewTicker(UsageInterval)
	defer sample.Stop()
	for {
		s.apply(effects)
		if m.phase == phaseDone {
			return
		}
		effects = m.on(s.await(sample.C), time.Now())
	}
}

// apply carries out effects in order; an effect that produces an event (a
// start, a stop) feeds it back into the machine at once.
func (s *supervisor) apply(effects []effect) {
	for len(effects) > 0 {
		e := effects[0]
		effects = effects[1:]
		if ev, ok := s.do(e); ok {
			effects = append(effects, s.m.on(ev, time.Now())...)
		}
	}
}

// await waits for the next event: the worker's exit (while one runs), the
// backoff timer, a newer spec, a stop request, or a usage sample.
func (s *supervisor) await(sample <-chan time.Time) event {
	var exited <-chan struct{}
	if s.cur != nil {
		exited = s.cur.Done()
	}
	var timer <-chan time.Time
	if s.timer != nil {
		timer = s.timer.C
	}
	for {
		select {
		case <-exited:
			return event{kind: evExited, exit: s.cur.Exit(), uptime: time.Since(s.cur.Started())}
		case <-timer:
			s.timer = nil
			return event{kind: evTimer}
		case ns := <-s.in.specCh:
			return event{kind: evSpec, spec: ns}
		case reason := <-s.in.stopCh:
			s.stopTimer()
			return event{kind: evStop, reason: reason}
		case <-sample:
			if s.cur == nil {
				continue
			}
			if cpu, mem, ok := s.usage.sample(s.cur.PID()); ok {
				return event{kind: evSample, cpu: cpu, mem: mem}
			}
		}
	}
}

// do carries out one effect; it returns the event it produced, if any.
func (s *supervisor) do(e effect) (event, bool) {
	r := s.in.r
	switch e.kind {
	case effStart:
		s.stopTimer()
		return s.start(), true
	case effReplace:
		old := s.cur
		ev := s.start() // the new worker first, then the old one goes
		old.Stop(e.grace)
		if ev.kind != evStarted {
			s.cur = nil
			r.pids.remove(s.in.key)
		}
		return ev, true
	case effStop:
		ex := s.cur.Stop(e.grace)
		s.cur = nil
		r.pids.remove(s.in.key)
		return event{kind: evStopped, exit: ex}, true
	case effReap:
		_ = s.cur.Signal(9) // the group: children the worker left behind
		r.pids.remove(s.in.key)
		if e.drain {
			// Let the last lines reach the log before the state changes; an
			// immediate restart does not wait (the old output drains anyway).
			s.cur.WaitOutput(200 * time.Millisecond)
		}
		s.cur = nil
	case effWait:
		s.timer = time.NewTimer(e.delay)
	case effStatus:
		r.putStatus(s.m.status)
	case effEvent:
		r.event(s.in.app, e.event, s.in.index, e.msg)
		if e.event == clientsdk.EventErrored {
			r.logger.Error("instance errored", "key", s.in.key, "reason", e.msg)
		}
	}
	return event{}, false
}

func (s *supervisor) stopTimer() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// start resolves the machine's spec into a command and spawns it.
func (s *supervisor) start() event {
	in, r, spec := s.in, s.in.r, s.m.spec
	ctx, cancel := context.WithTimeout(in.ctx, 5*time.Minute)
	defer cancel()
	cmd, err := r.resolveCommand(ctx, spec, in.index)
	var p *proc.Process
	if err == nil {
		lim := loglimit.New(loglimit.DefaultRate, loglimit.DefaultBurst)
		p, err = proc.Start(proc.Spec{
			Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir, Credential: cmd.Credential,
			OnStdout: func(l []byte) { r.publishLog(in.app, in.index, "out", l, lim) },
			OnStderr: func(l []byte) { r.publishLog(in.app, in.index, "err", l, lim) },
		})
	}
	if err != nil {
		return event{kind: evStartFailed, err: err, transient: clientsdk.IsTransient(err), aborted: in.ctx.Err() != nil}
	}
	s.cur, s.usage = p, usageSampler{}
	r.pids.add(in.key, p.PID())
	return event{kind: evStarted, pid: p.PID(), started: p.Started()}
}
