//go:build linux

package proc

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sweepInterval is how often orphans are looked for besides the sweep that
// follows every worker's exit.
const sweepInterval = 2 * time.Second

// registry knows the processes Start started, so that the orphan sweeper
// never takes one of them for an orphan. Start holds mu from the fork until
// the pid is registered; the sweeper holds it while it looks.
var registry = struct {
	mu    sync.Mutex
	known map[int]bool
	on    bool
	kick  chan struct{}
}{known: map[int]bool{}, kick: make(chan struct{}, 1)}

// EnableOrphanReaper makes this process the reaper of its workers'
// descendants (PR_SET_CHILD_SUBREAPER): a child that left its worker's
// process group (setsid) and outlived it is re-parented here instead of to
// init, and killed and reaped by a sweep that runs after every worker's
// exit and every 2 s. Only processes with DARTUP_APP in their environment,
// which every worker's descendants inherit, are swept. Safe to call more
// than once.
func EnableOrphanReaper() error {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.on {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	registry.on = true
	go sweepLoop()
	return nil
}

func register(pid int) { registry.known[pid] = true }

func forget(pid int) {
	registry.mu.Lock()
	delete(registry.known, pid)
	on := registry.on
	registry.mu.Unlock()
	if on {
		kickSweep()
	}
}

// kickSweep asks for a sweep soon.
func kickSweep() {
	select {
	case registry.kick <- struct{}{}:
	default:
	}
}

func sweepLoop() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-registry.kick:
			time.Sleep(50 * time.Millisecond) // let the kernel re-parent the dead worker's children
		}
		for _, pid := range orphans() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			go reap(pid)
		}
	}
}

// reap waits for the killed orphan pid, so that it leaves no zombie.
func reap(pid int) {
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, 0, nil)
}

// isOrphanChild reports whether pid is a child of this process that Start
// did not start: a worker's descendant re-parented here.
func isOrphanChild(pid int) bool {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return registry.on && !registry.known[pid] && parentOf(pid) == strconv.Itoa(os.Getpid())
}

// orphans returns this process's children that Start did not start and
// whose environment has DARTUP_APP: workers' descendants re-parented here.
func orphans() []int {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	self := strconv.Itoa(os.Getpid())
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || registry.known[pid] || parentOf(pid) != self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && (bytes.HasPrefix(env, []byte("DARTUP_APP=")) || bytes.Contains(env, []byte("\x00DARTUP_APP="))) {
			out = append(out, pid)
		}
	}
	return out
}

// parentOf returns the PPid of pid as /proc shows it ("" when unknown).
func parentOf(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// awaitExit returns once process pid has exited, without reaping it and
// without holding an OS thread while it waits: its pidfd (non-blocking)
// waits in Go's network poller, where any number of waits cost no thread.
// The caller's cmd.Wait then reaps a zombie and returns at once. It returns
// false when the pidfd cannot be used; the caller then just waits.
func awaitExit(pid int) bool {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	exited := false
	err = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		exited = err != nil || info.Signo != 0 // an error: let the caller's Wait say what it is
		return exited
	})
	return err == nil && exited
}
