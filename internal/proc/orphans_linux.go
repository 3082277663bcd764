//go:build linux

package proc

import (
	"bytes"
	"os"
	"strconv"
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
	return registry.on && !registry.known[pid] && parentOf(pid) == os.Getpid()
}

// orphans returns this process's children that Start did not start and
// whose environment has DARTUP_APP: workers' descendants re-parented here.
// It runs every sweepInterval over every process of the machine, so it
// reads only each one's stat line, into a buffer on the stack, and the
// environment of this process's unknown children alone.
func orphans() []int {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	self := os.Getpid()
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var out []int
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || registry.known[pid] || parentOf(pid) != self {
			continue
		}
		env, err := os.ReadFile("/proc/" + name + "/environ")
		if err == nil && (bytes.HasPrefix(env, []byte("DARTUP_APP=")) || bytes.Contains(env, []byte("\x00DARTUP_APP="))) {
			out = append(out, pid)
		}
	}
	return out
}

// parentOf returns the parent of pid as /proc shows it (0 when unknown).
func parentOf(pid int) int {
	st, _ := readProcStat(pid)
	return st.ppid
}
