package lambdas

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
)

// stdioRun is one stdio-protocol process serving one invocation.
type stdioRun struct {
	inv *invocation
	p   *proc.Process
}

// submitStdioLocked runs inv in a new process when fewer than MaxWorkers
// run, queues it when the queue has room, and answers 429 otherwise. It is
// called with f.mu held and unlocks it.
func (f *function) submitStdioLocked(inv *invocation) {
	if f.running < f.l.MaxWorkers {
		f.running++
		slot := f.takeSlotLocked()
		f.mu.Unlock()
		go f.runStdio(inv, slot)
		return
	}
	if len(f.queue) >= f.l.Queue {
		f.mu.Unlock()
		inv.fail(clientsdk.Errorf(429, TypeThrottled, "lambda %s is throttled: %d processes running and %d requests queued (raise --max-workers or --queue)",
			f.name, f.l.MaxWorkers, f.l.Queue))
		return
	}
	f.enqueueLocked(inv)
	f.mu.Unlock()
}

// runStdio serves inv, then the queue, with one process per request.
func (f *function) runStdio(inv *invocation, slot int) {
	for inv != nil {
		answer := f.execStdio(inv, slot)
		f.mu.Lock()
		inv = nil
		if !f.closed {
			inv = f.popQueueLocked()
		}
		if inv == nil {
			f.running--
			f.freeSlotLocked(slot)
			f.checkDrainedLocked()
		}
		f.mu.Unlock()
		// Answered once the slot is free again: a caller that sends its
		// next request on the answer finds the capacity it used.
		answer()
	}
	f.m.kick(f.name)
}

// limitBuffer keeps up to max bytes and notes whether more were written.
type limitBuffer struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	max      int
	overflow bool
}

func (b *limitBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); len(p) > room {
		b.overflow = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	b.buf.Write(p)
	return len(p), nil
}

// execStdio runs one process for inv: the event on stdin, the result from
// stdout; exit code ≠ 0 is a function error with stderr's tail. It returns
// the answer to send, which the caller sends once the slot is free.
func (f *function) execStdio(inv *invocation, slot int) (answer func()) {
	if inv.done.Load() {
		return func() {} // answered while queued (timeout)
	}
	out := &limitBuffer{max: MaxResponseBytes}
	tail := newTailBuffer(4096)
	start := time.Now()
	p, err := proc.Start(proc.Spec{
		Path: f.cmd.Path, Args: f.cmd.Args, Env: append(f.env(nil), inv.tr.stdioEnv()...), Dir: f.cmd.Dir, Credential: f.cmd.Credential,
		Stdin:     bytes.NewReader(inv.event),
		RawStdout: out,
		OnStderr:  f.onLine(slot, "err", tail, newLogLimit()),
	})
	if err != nil {
		return func() {
			inv.fail(clientsdk.Errorf(502, TypeStart, "lambda %s: cannot start its process: %v", f.name, err))
		}
	}
	f.st.coldStart()
	run := &stdioRun{inv: inv, p: p}
	f.mu.Lock()
	f.stdio[run] = struct{}{}
	closed := f.closed
	f.mu.Unlock()
	if closed {
		p.Kill()
	}
	timer := time.NewTimer(f.timeout())
	timedOut := false
	select {
	case <-p.Done():
	case <-timer.C:
		timedOut = true
		p.Kill()
	}
	timer.Stop()
	f.mu.Lock()
	delete(f.stdio, run)
	f.mu.Unlock()
	if timedOut {
		f.m.event(f.name, clientsdk.EventKilled, slot, "process %d killed: request %s timed out after %s", p.PID(), inv.id, f.timeout())
		return func() {
			inv.fail(clientsdk.Errorf(504, TypeTimedOut, "Task timed out after %.2f seconds (request %s); the process was killed", f.timeout().Seconds(), inv.id))
		}
	}
	ex := p.Exit()
	if ex.Code != 0 || ex.Signal != "" || ex.Err != nil {
		p.WaitOutput(100 * time.Millisecond)
		msg := tail.String()
		if msg == "" {
			msg = "the process ended with " + ex.String()
		}
		return func() { inv.fail(&clientsdk.Error{Code: 500, Type: TypeFunctionExit, Message: msg}) }
	}
	out.mu.Lock()
	overflow, body := out.overflow, out.buf.Bytes()
	out.mu.Unlock()
	if overflow {
		return func() {
			inv.fail(clientsdk.Errorf(413, TypeTooLarge, "Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponseBytes))
		}
	}
	if f.log.Enabled(context.Background(), slog.LevelDebug) {
		f.log.Debug("stdio invocation done", "request_id", inv.id, "pid", p.PID(), "took", time.Since(start))
	}
	return func() { inv.succeed(body) }
}
