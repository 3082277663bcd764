// Package proc starts and stops worker processes the way dartup supervises
// them: each in its own process group, killed with its parent runner (Linux
// parent-death signal), stdout and stderr read line by line, and stopped with
// SIGTERM to the whole group, a grace period, then SIGKILL, so that children a
// worker forked are not left behind.
package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// MaxLineBytes bounds one captured output line; longer lines are split.
const MaxLineBytes = 64 << 10

// Spec describes a process to start.
type Spec struct {
	// Path is the program; Args are its arguments (without argv[0]).
	Path string
	Args []string
	// Env is the complete environment ("K=V").
	Env []string
	// Dir is the working directory ("" for the runner's).
	Dir string
	// Stdin, when set, is the process's standard input (nil: /dev/null).
	Stdin io.Reader
	// OnStdout and OnStderr receive each output line without its newline
	// (the slice is valid only during the call). They run on the goroutine
	// that reads every process's output, one line at a time, and must not
	// block for long: other workers' lines wait meanwhile (their exits do
	// not). When nil, the stream is discarded.
	OnStdout func(line []byte)
	OnStderr func(line []byte)
	// RawStdout, when set, receives stdout bytes unsplit instead of OnStdout.
	RawStdout io.Writer
	// Credential, when set, is the user and group the process runs as (its
	// supplementary groups are cleared); nil keeps the runner's.
	Credential *Credential
}

// Credential is the user and group a process runs as.
type Credential struct {
	UID, GID uint32
}

// Process is a started process. Its methods are safe for concurrent use.
type Process struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	done    chan struct{}
	readers sync.WaitGroup

	mu    sync.Mutex
	state *os.ProcessState
	err   error
}

// Start starts s in a new process group. It returns an error when the program
// cannot be started (missing, not executable); the error names the path.
func Start(s Spec) (*Process, error) {
	// ETXTBSY: the program was written by this process a moment ago (the
	// runner's artifact cache) and a child forked meanwhile by another
	// goroutine still holds the write descriptor until its own exec closes it
	// (golang/go#22315). It clears within milliseconds: retry.
	for delay := 5 * time.Millisecond; ; delay *= 2 {
		p, err := start(s)
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || delay > time.Second {
			return p, err
		}
		time.Sleep(delay)
	}
}

func start(s Spec) (*Process, error) {
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = s.Env
	cmd.Dir = s.Dir
	cmd.Stdin = s.Stdin
	cmd.SysProcAttr = sysProcAttr(s.Credential)
	// A child that left the group (setsid) may hold a copied output open
	// after the process exited: Wait gives up on it after OutputWaitDelay
	// instead of waiting for the child.
	cmd.WaitDelay = OutputWaitDelay
	p := &Process{cmd: cmd, done: make(chan struct{})}

	var closeAfterStart []*os.File
	defer func() {
		for _, f := range closeAfterStart {
			f.Close()
		}
	}()
	if s.RawStdout != nil {
		cmd.Stdout = s.RawStdout
	} else if s.OnStdout != nil {
		w, err := p.outputPipe(s.OnStdout)
		if err != nil {
			return nil, fmt.Errorf("start %s: stdout pipe: %w", s.Path, err)
		}
		cmd.Stdout = w
		closeAfterStart = append(closeAfterStart, w)
	}
	if s.OnStderr != nil {
		w, err := p.outputPipe(s.OnStderr)
		if err != nil {
			return nil, fmt.Errorf("start %s: stderr pipe: %w", s.Path, err)
		}
		cmd.Stderr = w
		closeAfterStart = append(closeAfterStart, w)
	}
	registry.mu.Lock() // the orphan sweeper must not see this child unregistered
	err := startCmd(cmd)
	if err == nil {
		register(cmd.Process.Pid)
	}
	registry.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Path, err)
	}
	p.pid = cmd.Process.Pid
	p.started = time.Now()
	p.watchExit()
	return p, nil
}

// reap waits for the exited process (at once: it has exited, unless the
// exit watcher could not be used), records how it ended and closes done.
func (p *Process) reap() {
	err := p.cmd.Wait()
	forget(p.pid)
	p.mu.Lock()
	p.state = p.cmd.ProcessState
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, exec.ErrWaitDelay) {
		p.err = err
	}
	p.mu.Unlock()
	close(p.done)
}

// OutputWaitDelay bounds how long, after a process exited, its exit waits
// for the output that Spec.RawStdout copies: a descendant that escaped its
// group may hold it open for as long as it lives.
const OutputWaitDelay = 500 * time.Millisecond

// PID returns the process id (also its process group id).
func (p *Process) PID() int { return p.pid }

// Started returns when the process started.
func (p *Process) Started() time.Time { return p.started }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// WaitOutput waits, up to timeout, until the output readers have seen EOF,
// so that the last lines are delivered before the exit is reported.
func (p *Process) WaitOutput(timeout time.Duration) {
	ch := make(chan struct{})
	go func() { p.readers.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(timeout):
	}
}

// Exit describes how a process ended.
type Exit struct {
	// Code is the exit code, or -1 when a signal ended the process.
	Code int
	// Signal names the signal that ended it ("" when it exited).
	Signal string
	// Err is set when waiting failed.
	Err error
}

func (e Exit) String() string {
	if e.Signal != "" {
		return "killed by " + e.Signal
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// Exit returns how the process ended; call it after Done is closed.
func (p *Process) Exit() Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return Exit{Code: -1, Err: p.err}
	}
	ex := Exit{Code: p.state.ExitCode(), Err: p.err}
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ex.Code = -1
		ex.Signal = SignalName(ws.Signal())
	}
	return ex
}

// Signal sends sig to the process's whole group.
func (p *Process) Signal(sig syscall.Signal) error {
	return signalGroup(p.pid, sig)
}

// Stop sends SIGTERM to the group, waits up to grace for the process to exit,
// then sends SIGKILL to the group. It always kills what is left of the group
// after the leader has exited, so forked children do not outlive a stop. It
// returns once the leader has exited.
func (p *Process) Stop(grace time.Duration) Exit {
	select {
	case <-p.done:
		_ = signalGroup(p.pid, syscall.SIGKILL)
		return p.Exit()
	default:
	}
	_ = signalGroup(p.pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	}
	_ = signalGroup(p.pid, syscall.SIGKILL)
	<-p.done
	return p.Exit()
}

// Kill sends SIGKILL to the group and waits for the leader to exit.
func (p *Process) Kill() Exit {
	_ = signalGroup(p.pid, syscall.SIGKILL)
	<-p.done
	return p.Exit()
}

// SignalName returns the conventional name of sig, e.g. "SIGKILL".
func SignalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	case syscall.SIGBUS:
		return "SIGBUS"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	}
	return fmt.Sprintf("signal %d", int(sig))
}
