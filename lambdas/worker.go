package lambdas

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/loglimit"
	"github.com/dartup/dartup/internal/proc"
)

// errStopping is returned to a worker's GET /next when it is being stopped.
var errStopping = errors.New("worker is stopping")

// worker is one Runtime API worker process.
type worker struct {
	f  *function
	id string
	// secret is the worker's Runtime API path segment: 128 random bits that
	// only the worker's environment holds, so that no other process can take
	// its events or answer them.
	secret string
	index  int
	tail   *tailBuffer
	assign chan *invocation // an invocation for a worker idle in GET /next
	native *nativeWorker    // ProtocolNATS: its subject and control inbox (native.go); else nil
	// direct: a native worker that takes requests itself (direct.go);
	// set at its first ready notice.
	direct atomic.Bool
	// noDrain: a direct worker stopped because it is not subscribed
	// (direct.go dropUnsubscribed): no drain to wait for.
	noDrain atomic.Bool
	// rtConns counts the Runtime API connections that named the worker
	// (rtMaxWorkerConns at most); rtDropped says they were closed as the
	// worker is gone (guarded by the rtServer's mu).
	rtConns   atomic.Int32
	rtDropped bool

	stopOnce sync.Once
	stopCh   chan struct{} // closed when the worker must not get work any more
	goneCh   chan struct{} // closed when the worker is forgotten (exited)
	started  time.Time

	// guarded by f.mu
	proc       *proc.Process
	ready      bool // reached its first GET /next
	gone       bool
	stopping   bool // stop requested: gets no more work
	killed     bool // kill requested before proc was set
	initFailed bool // posted /runtime/init/error
	current    *invocation
	lastDone   string
	// batches are the requests of the last two batched done notices a
	// direct worker sent, newest first (noteBatchLocked).
	batches   [2][]directKey
	served    int
	returning bool // answered, not yet back in GET /next
	// idleTimer stops the worker after KeepWarm on the idle list (since
	// idleSince); execTimer enforces its invocations' Timeout. Both are
	// made once and set again, never one per invocation.
	idleTimer *time.Timer
	idleSince time.Time
	execTimer *time.Timer
	// unsubSince: when a request came back maxBounces times while this
	// direct worker was free in f's view (direct.go suspectLocked); zero
	// after each of its notices.
	unsubSince time.Time
}

// stopIdleTimer stops w's keep-warm timer (w leaves the idle list).
func (w *worker) stopIdleTimer() {
	if w.idleTimer != nil {
		w.idleTimer.Stop()
	}
}

func newWorker(f *function, index int) *worker {
	var b [6]byte
	_, _ = rand.Read(b[:])
	var s [16]byte
	_, _ = rand.Read(s[:])
	w := &worker{
		f: f, id: f.name + "-" + hex.EncodeToString(b[:]), secret: hex.EncodeToString(s[:]), index: index,
		tail:    newTailBuffer(4096),
		assign:  make(chan *invocation, 1),
		stopCh:  make(chan struct{}),
		goneCh:  make(chan struct{}),
		started: time.Now(),
	}
	if f.l.Protocol == clientsdk.ProtocolNATS {
		w.native = newNativeWorker(f, w.secret)
	}
	return w
}

// DefaultInitTimeout is the time a worker gets from its start to its first
// GET /next (AWS's init limit; see WithInitTimeout). A worker still
// initializing then is killed, so that it cannot hold a slot, and the oldest
// waiting request gets 502.
const DefaultInitTimeout = 10 * time.Second

func (w *worker) setReturningLocked(v bool) {
	if w.returning == v {
		return
	}
	w.returning = v
	if v {
		w.f.returning++
	} else {
		w.f.returning--
	}
}

func (w *worker) closeStop() { w.stopOnce.Do(func() { close(w.stopCh) }) }

// stop stops the worker's process group: SIGTERM, grace, SIGKILL.
func (w *worker) stop(grace time.Duration) {
	w.f.mu.Lock()
	p := w.proc
	if p == nil {
		w.killed = true
	}
	w.f.mu.Unlock()
	w.tellStop()
	if p != nil {
		w.awaitDrain(p, grace)
		p.Stop(grace)
	}
}

// kill sends SIGKILL to the worker's process group.
func (w *worker) kill() {
	w.f.mu.Lock()
	p := w.proc
	if p == nil {
		w.killed = true
	}
	w.f.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// env returns the environment of a worker: cmd.Env (built by the runner),
// the variables AWS sets for a bootstrap, and AWS_LAMBDA_RUNTIME_API (with
// w's secret path) or, for a native worker, its subject, control inbox and
// token (nativeEnv) last, so that nothing overrides them. A stdio process
// has no worker (nil).
func (f *function) env(w *worker) []string {
	id := ""
	if w != nil {
		id = w.id
	}
	version := "$LATEST"
	if f.spec.Revision > 0 {
		version = strconv.FormatUint(f.spec.Revision, 10)
	}
	root := f.cmd.Dir
	if root == "" {
		root = filepath.Dir(f.cmd.Path)
	}
	env := make([]string, 0, len(f.cmd.Env)+12)
	for _, kv := range f.cmd.Env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "_LAMBDA_SERVER_PORT", "AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_MAX_CONCURRENCY", clientsdk.EnvLambdaSubject, clientsdk.EnvLambdaControl,
			clientsdk.EnvLambdaDirect, clientsdk.EnvLambdaDirectControl, clientsdk.EnvLambdaTimeoutMS, clientsdk.EnvLambdaReplyPrefixes, clientsdk.EnvLambdaInflight,
			clientsdk.EnvLambdaBacklog:
			continue // they would change how a bootstrap talks to its runtime
		case "NATS_TOKEN":
			if w != nil && w.native != nil && f.cmd.WorkerToken != nil {
				continue // a native worker gets a token of its own (nativeEnv)
			}
		}
		env = append(env, kv)
	}
	env = append(env,
		"_HANDLER="+f.l.Handler,
		"LAMBDA_TASK_ROOT="+root,
		"AWS_LAMBDA_FUNCTION_NAME="+f.name,
		"AWS_LAMBDA_FUNCTION_VERSION="+version,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(f.l.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+f.name,
		"AWS_LAMBDA_LOG_STREAM_NAME="+time.Now().UTC().Format("2006/01/02")+"/["+version+"]"+id,
		"AWS_REGION="+f.m.opts.region,
		"AWS_DEFAULT_REGION="+f.m.opts.region,
		"AWS_EXECUTION_ENV=AWS_Lambda_dartup",
	)
	if w != nil && f.l.Protocol == clientsdk.ProtocolRuntimeAPI {
		env = append(env, "AWS_LAMBDA_RUNTIME_API="+f.m.RuntimeAPIAddr()+"/w/"+w.secret)
	}
	if w != nil && w.native != nil {
		env = append(env, f.nativeEnv(w)...)
	}
	return env
}

// onLine returns the output callback of stream ("out" or "err") of the
// worker with log index index: each line is published on the log subject
// (within lim's rate, shared by the worker's streams: a note says how many
// lines were dropped) and logged; stderr lines are also kept in tail.
func (f *function) onLine(index int, stream string, tail *tailBuffer, lim *loglimit.Limiter) func([]byte) {
	subject := clientsdk.LogSubject(f.name, index, stream)
	return func(line []byte) {
		if tail != nil {
			tail.add(line)
		}
		ok, note := lim.Allow(len(line), time.Now())
		if note != "" {
			_ = f.m.nc.Publish(subject, []byte(note))
		}
		if !ok {
			return
		}
		// Publish copies line; string(line) is a copy too: made only when
		// the line is logged.
		_ = f.m.nc.Publish(subject, line)
		if f.log.Enabled(context.Background(), f.m.opts.appLogLevel) {
			f.log.Log(context.Background(), f.m.opts.appLogLevel, "worker output", "worker", index, "stream", stream, "line", string(line))
		}
	}
}

// newLogLimit is the output limit of one worker (or stdio process).
func newLogLimit() *loglimit.Limiter {
	return loglimit.New(loglimit.DefaultRate, loglimit.DefaultBurst)
}

// startWorker starts w's process; a start failure answers the oldest waiting
// request with 502.
func (f *function) startWorker(w *worker) {
	lim := newLogLimit()
	p, err := proc.Start(proc.Spec{
		Path: f.cmd.Path, Args: f.cmd.Args, Env: f.env(w), Dir: f.cmd.Dir, Credential: f.cmd.Credential,
		OnStdout: f.onLine(w.index, "out", nil, lim),
		OnStderr: f.onLine(w.index, "err", w.tail, lim),
	})
	if err != nil {
		f.mu.Lock()
		f.removeWorkerLocked(w)
		inv := f.popQueueLocked()
		spawn := f.spawnNeededLocked()
		f.mu.Unlock()
		f.log.Error("cannot start lambda worker", "err", err)
		w.removeInflight()
		if inv != nil {
			inv.fail(clientsdk.Errorf(502, TypeStart, "lambda %s: cannot start its worker: %v", f.name, err))
		}
		f.startWorkers(spawn)
		return
	}
	f.mu.Lock()
	w.proc = p
	kill := w.killed
	f.mu.Unlock()
	if kill {
		go p.Kill()
	}
	initTimeout := f.m.opts.initTimeout
	initTimer := time.AfterFunc(initTimeout, func() {
		f.mu.Lock()
		stuck := !w.ready && !w.gone
		var inv *invocation
		if stuck {
			w.stopping = true
			inv = f.popQueueLocked()
		}
		f.mu.Unlock()
		if !stuck {
			return
		}
		f.log.Warn("killing a worker that did not ask for an event in time", "worker", w.id, "init_timeout", initTimeout)
		f.m.event(f.name, clientsdk.EventKilled, w.index, "worker %s killed: no GET /next within %s of its start", w.id, initTimeout)
		if inv != nil {
			inv.fail(clientsdk.Errorf(502, TypeStart, "lambda %s: its worker did not ask for an event within %s of its start; it was killed", f.name, initTimeout))
		}
		w.kill()
	})
	go func() { <-p.Done(); initTimer.Stop() }()
	f.st.coldStart()
	f.m.kick(f.name)
	f.log.Debug("worker started", "worker", w.id, "index", w.index, "pid", p.PID())
	f.m.event(f.name, clientsdk.EventColdStart, w.index, "worker %s started (pid %d)", w.id, p.PID())
	go f.watch(w)
}

// watch waits for w's process to exit: an invocation in flight gets 502 at
// once; a worker that died before asking for work fails one waiting request
// (so a broken bootstrap cannot loop); the queue gets new workers as needed.
func (f *function) watch(w *worker) {
	<-w.proc.Done()
	if w.native != nil {
		// A native worker's notices, sent before it exited, come first:
		// an init error (the cause its first caller must get, not "exited
		// before asking for an event"), and in direct mode the done
		// notice of a request it was timed on and those of requests over
		// within a moment, which dartup has not heard of yet.
		f.m.settle(time.Second)
	}
	f.mu.Lock()
	inv := w.current
	w.current = nil
	// A direct worker free in dartup's view that exits unasked most
	// likely died of a request it took within its first millisecond,
	// which dartup has not heard of: its caller's own timeout answers it.
	crashedFree := inv == nil && w.direct.Load() && w.ready && !w.stopping && !w.killed
	var initInv *invocation
	if !w.ready && !w.stopping && !w.initFailed {
		initInv = f.popQueueLocked()
	}
	f.removeWorkerLocked(w)
	spawn := f.spawnNeededLocked()
	f.mu.Unlock()
	ex := w.proc.Exit()
	if inv != nil {
		w.proc.WaitOutput(20 * time.Millisecond)
		msg := "the worker (pid " + strconv.Itoa(w.proc.PID()) + ") exited mid-invocation: " + ex.String()
		if t := w.tail.String(); t != "" {
			msg += "; stderr: " + t
		}
		inv.fail(clientsdk.Errorf(502, TypeExit, "%s", msg))
		f.m.event(f.name, clientsdk.EventCrashed, w.index, "worker %s %s during request %s", w.id, ex, inv.id)
	}
	var run *clientsdk.DoneRecord
	if w.direct.Load() {
		run = f.readInflight(w)
	}
	if crashedFree {
		f.directCrashed(w, ex, run)
	}
	w.removeInflight()
	f.startWorkers(spawn)
	if initInv != nil {
		w.proc.WaitOutput(200 * time.Millisecond)
		msg := "the worker exited before asking for an event (" + ex.String() + ")"
		if t := w.tail.String(); t != "" {
			msg += "; stderr: " + t
		}
		initInv.fail(clientsdk.Errorf(502, TypeExit, "lambda %s: %s", f.name, msg))
	}
	f.log.Debug("worker exited", "worker", w.id, "exit", ex.String())
	f.m.kick(f.name)
}

// await is the wait of a Runtime API worker's GET /next once takeNext put
// it on the idle list: for an invocation, for w's stop (errStopping), or for ctx (the worker hung up:
// an invocation assigned meanwhile goes back to the queue).
func (f *function) await(ctx context.Context, w *worker) (*invocation, error) {
	select {
	case inv := <-w.assign:
		return inv, nil
	case <-w.stopCh:
		return nil, errStopping
	case <-ctx.Done():
	}
	// The worker hung up: put back an invocation assigned meanwhile.
	f.mu.Lock()
	if i := slices.Index(f.idle, w); i >= 0 {
		f.idle = append(f.idle[:i], f.idle[i+1:]...)
	}
	w.stopIdleTimer()
	var spawn []*worker
	select {
	case inv := <-w.assign:
		if w.current == inv {
			w.current = nil
			f.queue = append([]*invocation{inv}, f.queue...)
			f.armQueueLocked(inv)
			spawn = f.spawnNeededLocked()
		}
	default:
	}
	f.mu.Unlock()
	f.startWorkers(spawn)
	return nil, ctx.Err()
}

// takeNext is the part of next that does not wait, shared with native
// workers (whose "next" is a notice): w gives up an invocation it still
// holds (502 for its caller) and is ready; it gets the oldest waiting
// request, or errStopping (and is stopped when nothing may keep it warm),
// or (nil, nil): it is on the idle list, where submit hands it work.
func (f *function) takeNext(w *worker) (*invocation, error) {
	f.mu.Lock()
	if w.gone || w.stopping {
		f.mu.Unlock()
		return nil, errStopping
	}
	if w.current == nil && slices.Contains(f.idle, w) {
		// Already waiting (a second GET /next, a repeated ready notice):
		// listing it twice would hand it two invocations at once.
		f.mu.Unlock()
		return nil, nil
	}
	orphan, first := f.backLocked(w)
	defer f.afterBack(w, orphan, first)
	if inv := f.popQueueLocked(); inv != nil {
		f.assignLocked(w, inv)
		f.mu.Unlock()
		return inv, nil
	}
	if f.stopUnwantedLocked(w) {
		return nil, errStopping
	}
	f.parkLocked(&f.idle, w)
	f.mu.Unlock()
	return nil, nil
}

// backLocked makes w, back from an invocation or just started, ready: it
// returns the invocation w gave up without answering (orphan, 502 for its
// caller) and whether this is w's first ready. afterBack does the rest
// once f.mu is released.
func (f *function) backLocked(w *worker) (orphan *invocation, first bool) {
	orphan = w.current
	if orphan != nil {
		w.current = nil
		w.doneWithLocked(orphan)
	}
	w.setReturningLocked(false)
	first = !w.ready
	if first {
		w.ready = true
		f.starting--
	}
	return orphan, first
}

func (f *function) afterBack(w *worker, orphan *invocation, first bool) {
	if orphan != nil {
		orphan.fail(clientsdk.Errorf(502, TypeNoResponse, "the worker asked for the next event without answering request %s", orphan.id))
	}
	if first {
		f.log.Debug("worker ready", "worker", w.id, "init", time.Since(w.started))
		f.m.kick(f.name)
	}
}

// stopUnwantedLocked stops w, ready and free, when nothing may keep it
// warm (the lambda is closed or replaced, or KeepWarm is 0); it unlocks
// f.mu then. It reports whether w was stopped.
func (f *function) stopUnwantedLocked(w *worker) bool {
	if !f.closed && !f.retiring && f.keepWarm() != 0 {
		return false
	}
	w.stopping = true
	f.mu.Unlock()
	w.closeStop()
	go w.stop(f.m.opts.stopGrace)
	return true
}

// parkLocked puts w on list (f.idle, or f.free for a direct worker) and
// sets its keep-warm timer.
func (f *function) parkLocked(list *[]*worker, w *worker) {
	if !slices.Contains(*list, w) {
		*list = append(*list, w)
	}
	w.idleSince = time.Now()
	if w.idleTimer == nil {
		w.idleTimer = time.AfterFunc(f.keepWarm(), func() { f.expire(w) })
	} else {
		w.idleTimer.Reset(f.keepWarm())
	}
}

// finish ends w's current invocation id (a response or an error was
// posted). It returns the invocation, or the Runtime API status to answer:
// 400 for an unknown request id, 403 for one already answered.
func (f *function) finish(w *worker, id string) (*invocation, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv := w.current
	if inv == nil || inv.id != id {
		if id != "" && id == w.lastDone {
			return nil, 403
		}
		return nil, 400
	}
	w.current = nil
	w.doneWithLocked(inv)
	w.served++
	if !w.stopping {
		w.setReturningLocked(true)
	}
	return inv, 0
}

// initError handles POST /runtime/init/error: the error goes to the first
// invocation waiting, and the worker is stopped.
func (f *function) initError(w *worker, e *clientsdk.Error) {
	f.mu.Lock()
	w.initFailed = true
	w.stopping = true
	inv := w.current
	w.current = nil
	if inv == nil {
		inv = f.popQueueLocked()
	}
	f.mu.Unlock()
	f.log.Warn("lambda init error", "worker", w.id, "type", e.Type, "message", e.Message)
	if inv != nil {
		inv.fail(e)
	}
	w.closeStop()
	go w.stop(f.m.opts.stopGrace)
}

// tailBuffer keeps the last bytes of a worker's stderr.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) add(line []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) > 0 {
		t.b = append(t.b, '\n')
	}
	t.b = append(t.b, line...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
}

// String returns the kept tail, trimmed.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
