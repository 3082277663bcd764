package runner

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
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

	specCh chan *clientsdk.AppSpec
	stopCh chan stopReason
	// ctx ends when a stop is requested, cancelling an artifact fetch.
	ctx    context.Context
	cancel context.CancelFunc
	// sentRev and sentSpec are the last spec handed over, gateWhy why its
	// rollout waits (guarded by Runner.mu).
	sentRev  uint64
	sentSpec clientsdk.AppSpec
	gateWhy  string
	// routed: the instance's last status said running and ready, so a new
	// spec reaches it only through the rollout gate.
	routed atomic.Bool
	done   chan struct{}
}

func newInstance(r *Runner, key, app string, index int) *instance {
	ctx, cancel := context.WithCancel(context.Background())
	return &instance{r: r, key: key, app: app, index: index, ctx: ctx, cancel: cancel,
		specCh: make(chan *clientsdk.AppSpec, 1), stopCh: make(chan stopReason, 1), done: make(chan struct{})}
}

// updateSpec hands the supervisor a newer spec; only the latest is kept.
func (in *instance) updateSpec(s clientsdk.AppSpec) {
	select {
	case <-in.specCh:
	default:
	}
	in.specCh <- &s
}

func (in *instance) requestStop(reason stopReason) {
	in.cancel() // a fetch in progress gives up at once
	select {
	case in.stopCh <- reason:
	default:
	}
}

// worker is one process of an instance, with its port and the probes
// that watch it (cancelled with it).
type worker struct {
	p      *proc.Process
	port   int    // its PORT, 0 for none
	pooled bool   // port came from the runner's pool
	addr   string // where it serves: the advertised host and port
	ctx    context.Context
	cancel context.CancelFunc
}

// supervisor runs an instance's machine: it waits for the next event and
// carries out the machine's effects (spawning, probing, stopping, status,
// events). During a rollout it holds the current worker, its replacement
// (next), and the worker being retired (old).
type supervisor struct {
	in     *instance
	m      *machine
	cur    *worker
	next   *worker
	old    *worker
	usage  usageSampler
	timer  *time.Timer
	probes chan event
}

// run supervises the instance until it is stopped; its status starts with
// the failed rollout it carries over, if any. spec is taken by pointer and
// the supervisor made by newSupervisor, so that the frames that stay on an
// idle supervisor's stack are small: the runtime then shrinks the stack of
// a long-lived, mostly idle goroutine to a few KiB.
func (in *instance) run(spec *clientsdk.AppSpec, failed rolloutFailure) {
	defer close(in.done)
	s, effects := in.newSupervisor(spec, failed)
	sample := time.NewTicker(UsageInterval)
	defer sample.Stop()
	defer s.closeAll()
	for {
		s.apply(effects)
		if s.m.phase == phaseDone {
			return
		}
		effects = s.m.on(s.await(sample.C), time.Now())
	}
}

// newSupervisor returns the supervisor of in for spec and the effects that
// begin it.
func (in *instance) newSupervisor(spec *clientsdk.AppSpec, failed rolloutFailure) (*supervisor, []effect) {
	m, effects := newMachine(in.r.nodeID, in.index, *spec)
	m.status.FailedRevision, m.status.LastError = failed.rev, failed.why
	return &supervisor{in: in, m: m, probes: make(chan event, 4)}, effects
}

// closeAll stops whatever workers are left when the supervisor ends (none
// normally: the machine stops them first).
func (s *supervisor) closeAll() {
	for _, w := range []*worker{s.cur, s.next, s.old} {
		if w != nil {
			s.retire(w, time.Second, false)
		}
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

// await waits for the next event: a worker's exit, a probe's result, the
// backoff timer, a newer spec, a stop request, or a usage sample. It fills
// its one result in place (the supervisor waits here, so its frame stays
// small).
func (s *supervisor) await(sample <-chan time.Time) (ev event) {
	var exited, nextExited <-chan struct{}
	if s.cur != nil {
		exited = s.cur.p.Done()
	}
	if s.next != nil {
		nextExited = s.next.p.Done()
	}
	var timer <-chan time.Time
	if s.timer != nil {
		timer = s.timer.C
	}
	for {
		select {
		case <-exited:
			ev.kind, ev.exit, ev.uptime = evExited, s.cur.p.Exit(), time.Since(s.cur.p.Started())
			return ev
		case <-nextExited:
			ev.kind, ev.next, ev.exit, ev.uptime = evExited, true, s.next.p.Exit(), time.Since(s.next.p.Started())
			return ev
		case ev = <-s.probes:
			return ev
		case <-timer:
			s.timer = nil
			ev.kind = evTimer
			return ev
		case ev.spec = <-s.in.specCh:
			ev.kind = evSpec
			return ev
		case ev.reason = <-s.in.stopCh:
			s.stopTimer()
			ev.kind = evStop
			return ev
		case <-sample:
			if s.cur == nil {
				continue
			}
			var ok bool
			if ev.cpu, ev.mem, ok = s.usage.sample(s.cur.p.PID()); ok {
				ev.kind, ev.cpuSec = evSample, float64(s.usage.lastTicks)/clockTicks
				return ev
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
		return s.start(false), true
	case effStartNext:
		return s.start(true), true
	case effProbe:
		s.probe(e.next)
	case effHealth:
		s.watchHealth()
	case effPromote:
		s.old, s.cur, s.next = s.cur, s.next, nil
		r.pids.remove(s.in.key + ".next")
		r.pids.add(s.in.key, s.cur.p.PID())
		s.usage = usageSampler{}
	case effDemote:
		s.old, s.cur = s.cur, nil
	case effRetire:
		if s.old != nil {
			s.retire(s.old, e.grace, e.drain)
			s.old = nil
		}
	case effStopNext:
		if s.next != nil {
			s.retire(s.next, e.grace, false)
			s.next = nil
			r.pids.remove(s.in.key + ".next")
		}
	case effKill:
		s.cur.cancel()
		s.cur.p.Stop(e.grace) // its exit comes as evExited
	case effStop:
		w := s.cur
		s.cur = nil
		r.pids.remove(s.in.key)
		return event{kind: evStopped, exit: s.retire(w, e.grace, e.drain)}, true
	case effReap:
		_ = s.cur.p.Signal(9) // the group: children the worker left behind
		r.pids.remove(s.in.key)
		if e.drain {
			// Let the last lines reach the log before the state changes; an
			// immediate restart does not wait (the old output drains anyway).
			s.cur.p.WaitOutput(200 * time.Millisecond)
		}
		s.release(s.cur)
		s.cur = nil
	case effWait:
		s.timer = time.NewTimer(e.delay)
	case effStatus:
		st := s.m.status
		r.putStatus(st)
		if routed := st.State == clientsdk.StateRunning && st.Ready; routed != s.in.routed.Swap(routed) && routed {
			r.poke() // a rollout waiting for this instance may go on
		}
	case effEvent:
		r.event(s.in.app, e.event, s.in.index, e.msg)
		if e.event == clientsdk.EventErrored || e.event == clientsdk.EventRolloutFailed {
			r.logger.Error("instance "+string(e.event), "key", s.in.key, "reason", e.msg)
		}
	}
	return event{}, false
}

// retire stops worker w (SIGTERM, grace, SIGKILL of its group), first
// letting the gateways finish the requests they sent it when it was routed
// (up to grace), and gives its port back.
func (s *supervisor) retire(w *worker, grace time.Duration, drain bool) proc.Exit {
	w.cancel()
	if drain && w.addr != "" {
		s.in.r.drainGateways(w.addr, w.p.PID(), grace)
	}
	ex := w.p.Stop(grace)
	s.release(w)
	return ex
}

// release gives a worker's pooled port back.
func (s *supervisor) release(w *worker) {
	w.cancel()
	if w.pooled {
		s.in.r.ports.release(w.port)
	}
}

func (s *supervisor) stopTimer() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// probe waits, in the background, until worker cur (or next) is ready or
// its ready timeout passes, and reports which as an event.
func (s *supervisor) probe(next bool) {
	w := s.cur
	if next {
		w = s.next
	}
	p, timeout, pid := s.m.spec.ReadyProbe(), s.m.spec.ReadyTimeout.D(), w.p.PID()
	uptime := min(s.m.spec.Restart.MinUptime.D(), timeout)
	// The new worker of a rollout (the replacement, or the worker of a
	// stop-first rollout, which has a version to go back to) must also
	// stay up for its min_uptime once ready.
	replacing := next || s.m.prev != nil
	go func() {
		var err error
		if p.Kind == clientsdk.ProbeNone {
			select { // a replacement without a probe: ready once it has stayed up
			case <-time.After(uptime):
			case <-w.ctx.Done():
				return
			}
		} else {
			err = awaitReady(w.ctx, p, w.port, timeout)
			// A replacement takes over only once it has also stayed up for
			// its min_uptime: a version that gets ready and then crashes
			// never replaces one that runs.
			if wait := time.Until(w.p.Started().Add(uptime)); err == nil && replacing && wait > 0 {
				select {
				case <-time.After(wait):
				case <-w.ctx.Done():
					return
				}
			}
		}
		ev := event{kind: evReady, pid: pid, next: next}
		if err != nil {
			ev = event{kind: evNotReady, pid: pid, next: next, err: err}
		}
		s.report(w.ctx, ev)
	}()
}

// watchHealth checks the current worker's health in the background and
// reports evUnhealthy when it fails.
func (s *supervisor) watchHealth() {
	w, spec := s.cur, s.m.spec
	pid := w.p.PID()
	go func() {
		if err := watchHealth(w.ctx, spec.HealthProbe(), w.port, spec.HealthInterval.D(), spec.HealthFailures); err != nil {
			s.report(w.ctx, event{kind: evUnhealthy, pid: pid, err: err})
		}
	}()
}

// report hands a probe's event to the supervisor unless its worker is gone.
func (s *supervisor) report(ctx context.Context, ev event) {
	select {
	case s.probes <- ev:
	case <-ctx.Done():
	}
}

// start resolves the machine's spec into a command and spawns it, as the
// current worker or (next) as the replacement of a rollout.
func (s *supervisor) start(next bool) event {
	in, r, spec := s.in, s.in.r, s.m.spec
	w, err := s.spawn(spec)
	if err != nil {
		return event{kind: evStartFailed, next: next, err: err, transient: clientsdk.IsTransient(err), aborted: in.ctx.Err() != nil}
	}
	if next {
		s.next = w
		r.pids.add(in.key+".next", w.p.PID())
	} else {
		s.cur, s.usage = w, usageSampler{}
		r.pids.add(in.key, w.p.PID())
	}
	return event{kind: evStarted, next: next, pid: w.p.PID(), started: w.p.Started(), addr: w.addr}
}

// spawn starts a worker for spec, with a PORT when the spec needs one: its
// fixed one, or a free one from the runner's pool.
func (s *supervisor) spawn(spec clientsdk.AppSpec) (*worker, error) {
	in, r := s.in, s.in.r
	ctx, cancel := context.WithTimeout(in.ctx, 5*time.Minute)
	defer cancel()
	cmd, err := r.resolveCommand(ctx, spec, in.index)
	if err != nil {
		return nil, err
	}
	w := &worker{}
	switch {
	case spec.Port > 0:
		w.port = spec.Port + in.index
		if err := portFree(w.port); err != nil {
			return nil, fmt.Errorf("port %d is in use on node %s (another process listens on it; a probe would reach that one): %w", w.port, r.nodeID, err)
		}
	case spec.NeedsPort():
		if w.port, err = r.ports.take(); err != nil {
			return nil, err
		}
		w.pooled = true
		cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(w.port))
	}
	if w.port > 0 {
		w.addr = hostPort(r.advertise, w.port)
	}
	lim := loglimit.New(loglimit.DefaultRate, loglimit.DefaultBurst)
	w.p, err = proc.Start(proc.Spec{
		Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir, Credential: cmd.Credential,
		OnStdout: func(l []byte) { r.publishLog(in.app, in.index, "out", l, lim) },
		OnStderr: func(l []byte) { r.publishLog(in.app, in.index, "err", l, lim) },
	})
	if err != nil {
		if w.pooled {
			r.ports.release(w.port)
		}
		return nil, err
	}
	w.ctx, w.cancel = context.WithCancel(in.ctx)
	return w, nil
}
