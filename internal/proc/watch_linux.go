//go:build linux

package proc

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// watcher waits for many descriptors with one goroutine and no OS thread:
// an epoll instance that is itself waited for in Go's network poller. An
// idle worker's output pipes and exit cost a registration each, not a
// goroutine (with its stack) and a read buffer each. Handlers run on the
// watcher's goroutine, one at a time, and must not block for long.
type watcher struct {
	epfd int
	// buf is the read buffer handlers share (only the loop uses it).
	buf []byte

	mu       sync.Mutex
	next     uint64
	handlers map[uint64]func(events uint32)
}

// watcherBufBytes is the read buffer of one watcher, shared by every
// stream it reads.
const watcherBufBytes = 32 << 10

// newWatcher starts a watcher whose loop runs until the process ends.
func newWatcher() (*watcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	// A descriptor in Go's poller supports deadlines; one that is not would
	// make the loop below block a thread.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("epoll descriptor is not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	w := &watcher{epfd: epfd, buf: make([]byte, watcherBufBytes), handlers: map[uint64]func(uint32){}}
	go w.loop(f, rc)
	return w, nil
}

// loop hands the ready descriptors to their handlers, forever. f is kept
// alive here: its finalizer would close the epoll descriptor.
func (w *watcher) loop(f *os.File, rc syscall.RawConn) {
	events := make([]unix.EpollEvent, 64)
	for {
		failed := false
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, err := unix.EpollWait(int(fd), events, 0)
				switch {
				case errors.Is(err, unix.EINTR):
					continue
				case err != nil:
					failed = true
					return true
				case n == 0:
					return false // nothing ready: wait in the poller
				}
				w.dispatch(events[:n])
			}
		})
		if err != nil || failed {
			panic(fmt.Sprintf("proc: the descriptor watcher failed: %v", err)) // never expected: output and exits would go unseen
		}
		runtime.KeepAlive(f)
	}
}

func (w *watcher) dispatch(events []unix.EpollEvent) {
	for _, ev := range events {
		id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		w.mu.Lock()
		h := w.handlers[id]
		w.mu.Unlock()
		if h != nil { // nil: removed after this event was queued
			h(ev.Events)
		}
	}
}

// reserve returns the id of a registration to come, never reused, so that
// a late event for a removed descriptor reaches no handler even when its
// number is reused.
func (w *watcher) reserve() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next++
	return w.next
}

// add watches fd for events (level-triggered) under id, from reserve; h
// gets them until remove.
func (w *watcher) add(fd int, id uint64, events uint32, h func(events uint32)) error {
	w.mu.Lock()
	w.handlers[id] = h
	w.mu.Unlock()
	ev := unix.EpollEvent{Events: events, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		w.remove(-1, id)
		return err
	}
	return nil
}

// remove stops watching fd (registered as id); call it before closing fd,
// whose open file may live on in a child forked meanwhile.
func (w *watcher) remove(fd int, id uint64) {
	if fd >= 0 {
		_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
	w.mu.Lock()
	delete(w.handlers, id)
	w.mu.Unlock()
}

// watchers: one for output, one for exits, so that a slow output handler
// never delays noticing an exit.
var watchers = sync.OnceValues(func() (*[2]*watcher, error) {
	out, err := newWatcher()
	if err != nil {
		return nil, err
	}
	exits, err := newWatcher()
	if err != nil {
		return nil, err
	}
	return &[2]*watcher{out, exits}, nil
})

// outputPipe returns the write end of a new pipe for a child's output; the
// read end is read by the output watcher, whose lines go to fn. The stream
// counts in p.readers until its EOF.
func (p *Process) outputPipe(fn func([]byte)) (*os.File, error) {
	ws, err := watchers()
	if err != nil {
		return nil, err
	}
	w := ws[0]
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	r := fds[0]
	// Only the read end is non-blocking: the child's end stays as
	// programs expect it.
	if err := unix.SetNonblock(r, true); err != nil {
		unix.Close(r)
		unix.Close(fds[1])
		return nil, err
	}
	s := &outStream{fd: r, id: w.reserve(), w: w, p: p, lines: lineSplitter{fn: fn}}
	p.readers.Add(1)
	if err := w.add(r, s.id, unix.EPOLLIN|unix.EPOLLRDHUP, s.onReady); err != nil {
		p.readers.Done()
		unix.Close(r)
		unix.Close(fds[1])
		return nil, err
	}
	return os.NewFile(uintptr(fds[1]), "|1"), nil
}

// outStream is the read end of one output pipe.
type outStream struct {
	fd    int
	id    uint64
	w     *watcher
	p     *Process
	lines lineSplitter
}

// readsPerWake bounds the reads of one stream per turn, so that a worker
// that writes without pause does not starve the others.
const readsPerWake = 4

// onReady reads what the pipe holds (on the watcher's goroutine).
func (s *outStream) onReady(uint32) {
	for range readsPerWake {
		n, err := unix.Read(s.fd, s.w.buf)
		switch {
		case n > 0:
			s.lines.write(s.w.buf[:n])
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return
		default: // EOF: every holder of the write end closed it
			s.close()
			return
		}
	}
}

func (s *outStream) close() {
	s.lines.flush()
	s.w.remove(s.fd, s.id)
	unix.Close(s.fd)
	s.p.readers.Done()
}

// watchExit arranges for p to be reaped, and p.done closed, once it has
// exited: the exit watcher waits for its pidfd. Without a pidfd (kernels
// before 5.3) a goroutine waits instead.
func (p *Process) watchExit() {
	ws, err := watchers()
	fd := -1
	if err == nil {
		fd, err = unix.PidfdOpen(p.pid, unix.PIDFD_NONBLOCK)
	}
	if err != nil {
		go p.reap()
		return
	}
	w := ws[1]
	id := w.reserve()
	h := func(uint32) {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == nil && info.Signo == 0 {
			return // not yet
		}
		// Exited (or an error that Wait will report): no more events.
		w.remove(fd, id)
		unix.Close(fd)
		go p.reap() // Wait may wait for exec's copying of Stdin or RawStdout
	}
	if err := w.add(fd, id, unix.EPOLLIN, h); err != nil {
		unix.Close(fd)
		go p.reap()
	}
}
