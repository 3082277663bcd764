package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dartup/dartup/clientsdk"
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

func (in *instance) run(spec clientsdk.AppSpec) {
	defer close(in.done)
	r := in.r
	tracker := NewTracker(PolicyFrom(spec.Restart))
	st := clientsdk.InstanceStatus{App: in.app, Instance: in.index, Node: r.nodeID, SpecRevision: spec.Revision, State: clientsdk.StateStarting}
	var cur *proc.Process
	var usage usageSampler
	sample := time.NewTicker(UsageInterval)
	defer sample.Stop()

	start := func() (*proc.Process, error) {
		st.State, st.SpecRevision = clientsdk.StateStarting, spec.Revision
		ctx, cancel := context.WithTimeout(in.ctx, 5*time.Minute)
		defer cancel()
		cmd, err := r.resolveCommand(ctx, spec, in.index)
		if err != nil {
			return nil, err
		}
		p, err := proc.Start(proc.Spec{
			Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir, Credential: cmd.Credential,
			OnStdout: func(l []byte) { r.publishLog(in.app, in.index, "out", l) },
			OnStderr: func(l []byte) { r.publishLog(in.app, in.index, "err", l) },
		})
		if err != nil {
			return nil, err
		}
		r.pids.add(in.key, p.PID())
		st.State, st.PID, st.StartedAt, st.LastError = clientsdk.StateRunning, p.PID(), p.Started().UTC(), ""
		st.CPUPercent, st.MemoryBytes = 0, 0
		usage = usageSampler{}
		r.putStatus(st)
		r.event(in.app, clientsdk.EventStarted, in.index, fmt.Sprintf("pid %d", p.PID()))
		return p, nil
	}
	// idle waits, with no worker running, for a new spec or a stop.
	idle := func() (stopReason, bool) {
		for {
			select {
			case ns := <-in.specCh:
				if ns.Revision != spec.Revision {
					spec, tracker = ns, NewTracker(PolicyFrom(ns.Restart))
					return 0, false
				}
			case reason := <-in.stopCh:
				return reason, true
			}
		}
	}
	finish := func(reason stopReason, ex *proc.Exit) {
		st.PID = 0
		if ex != nil {
			code := ex.Code
			st.LastExitCode, st.LastSignal = &code, ex.Signal
		}
		switch reason {
		case stopKilled, stopShutdown:
			st.State = clientsdk.StateStopped
			if reason == stopShutdown {
				st.LastError = "the node shut down"
			}
			r.putStatus(st)
			r.event(in.app, clientsdk.EventKilled, in.index, "stopped")
		}
	}
	fail := func(err error) {
		st.State, st.LastError, st.PID = clientsdk.StateErrored, err.Error(), 0
		r.putStatus(st)
		r.event(in.app, clientsdk.EventErrored, in.index, err.Error())
		r.logger.Error("instance cannot start", "key", in.key, "err", err)
	}

	for {
		if cur == nil {
			p, err := start()
			if err != nil && clientsdk.IsTransient(err) {
				// The server did not answer (a cluster electing a leader):
				// count it as a crash, so it is retried with backoff and the
				// crash-loop guard still ends it.
				d := tracker.OnExit(-1, "", 0)
				if d.Restart {
					st.State, st.LastError, st.Restarts = clientsdk.StateBackoff, err.Error(), st.Restarts+1
					r.putStatus(st)
					r.logger.Warn("instance start failed; retrying", "key", in.key, "in", d.Delay, "err", err)
					select {
					case <-time.After(max(d.Delay, 100*time.Millisecond)):
					case ns := <-in.specCh:
						if ns.Revision != spec.Revision {
							spec, tracker = ns, NewTracker(PolicyFrom(ns.Restart))
						}
					case reason := <-in.stopCh:
						finish(reason, nil)
						return
					}
					continue
				}
			}
			if err != nil {
				if in.ctx.Err() == nil { // not merely cut short by a stop
					fail(err)
				}
				if reason, stop := idle(); stop {
					finish(reason, nil)
					return
				}
				continue
			}
			cur = p
		}
		select {
		case <-cur.Done():
			ex := cur.Exit()
			uptime := time.Since(cur.Started())
			_ = cur.Signal(9) // the group: children the worker left behind
			r.pids.remove(in.key)
			code := ex.Code
			st.LastExitCode, st.LastSignal, st.PID = &code, ex.Signal, 0
			d := tracker.OnExit(ex.Code, ex.Signal, uptime)
			if !d.Restart || d.Delay > 0 {
				// Let the last lines reach the log before the state changes; an
				// immediate restart does not wait (the old output drains anyway).
				cur.WaitOutput(200 * time.Millisecond)
			}
			cur = nil
			kind := clientsdk.EventExited
			if ex.Code != 0 || ex.Signal != "" {
				kind = clientsdk.EventCrashed
			}
			r.event(in.app, kind, in.index, fmt.Sprintf("%s after %s", ex, uptime.Round(time.Millisecond)))
			if !d.Restart {
				st.State = d.State
				if d.State == clientsdk.StateErrored {
					st.LastError = d.Reason
					r.event(in.app, clientsdk.EventErrored, in.index, d.Reason)
				} else {
					st.LastError = ""
				}
				r.putStatus(st)
				if reason, stop := idle(); stop {
					finish(reason, nil)
					return
				}
				continue
			}
			st.State, st.Restarts = clientsdk.StateBackoff, st.Restarts+1
			if d.Delay > 0 {
				r.putStatus(st)
				t := time.NewTimer(d.Delay)
			wait:
				for {
					select {
					case <-t.C:
						break wait
					case ns := <-in.specCh:
						if ns.Revision != spec.Revision { // a new spec restarts at once
							t.Stop()
							spec, tracker = ns, NewTracker(PolicyFrom(ns.Restart))
							break wait
						}
					case reason := <-in.stopCh:
						t.Stop()
						finish(reason, nil)
						return
					}
				}
			}
			r.event(in.app, clientsdk.EventRestarted, in.index, fmt.Sprintf("restart %d", st.Restarts))
		case ns := <-in.specCh:
			if ns.Revision == spec.Revision {
				continue
			}
			if !material(spec, ns) {
				spec = ns
				st.SpecRevision = ns.Revision
				r.putStatus(st)
				continue
			}
			old, oldKill := cur, spec.Restart.KillTimeout.D()
			spec, tracker = ns, NewTracker(PolicyFrom(ns.Restart))
			p, err := start() // the new worker first, then the old one goes
			old.Stop(oldKill)
			if err != nil {
				cur = nil
				r.pids.remove(in.key)
				fail(err)
				if reason, stop := idle(); stop {
					finish(reason, nil)
					return
				}
				continue
			}
			cur = p
			r.pids.add(in.key, p.PID())
		case reason := <-in.stopCh:
			st.State = clientsdk.StateStopping
			if reason == stopKilled {
				r.putStatus(st)
			}
			ex := cur.Stop(spec.Restart.KillTimeout.D())
			r.pids.remove(in.key)
			finish(reason, &ex)
			return
		case <-sample.C:
			if cpu, mem, ok := usage.sample(cur.PID()); ok {
				st.CPUPercent, st.MemoryBytes = cpu, mem
				r.putStatus(st)
			}
		}
	}
}
