//go:build linux

package proc

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sysProcAttr puts the child in its own process group, asks the kernel to
// SIGKILL it when the runner dies (so workers never outlive a crashed
// runner), and switches it to cred (with no supplementary groups) when set.
func sysProcAttr(cred *Credential) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cred != nil {
		a.Credential = &syscall.Credential{Uid: cred.UID, Gid: cred.GID, Groups: []uint32{}}
	}
	return a
}

// spawnReq asks the spawner thread to start cmd.
type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// spawner is the thread that starts every worker; see startCmd.
var spawner = sync.OnceValues(func() (chan<- spawnReq, error) {
	ch := make(chan spawnReq)
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread stays as it is
		ready <- unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
		for r := range ch {
			r.done <- r.cmd.Start()
		}
	}()
	return ch, <-ready
})

// startCmd starts cmd on the spawner thread: one OS thread, locked for the
// life of the process, that has no_new_privs set. A child inherits the
// attributes of the thread that forked it, so every worker starts with
// no_new_privs (set-user-ID programs and file capabilities give it nothing),
// and the parent-death signal, which the kernel ties to the forking thread,
// fires only when the runner itself dies.
func startCmd(cmd *exec.Cmd) error {
	ch, _ := spawner()
	done := make(chan error, 1)
	ch <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// NoNewPrivs returns the error of setting no_new_privs on the spawner thread
// (nil when every worker starts with it).
func NoNewPrivs() error {
	_, err := spawner()
	return err
}

func signalGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return errors.New("no process")
	}
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// KillLeftover kills the process group pgid if its leader is still the
// process that started at startTime (or, when the leader is gone, any member
// of the group is left). It reports whether anything was signalled.
func KillLeftover(pgid int, startTime uint64) bool {
	if pgid <= 0 {
		return false
	}
	if st := StartTime(pgid); st != 0 {
		if st != startTime {
			return false // the pid was reused by an unrelated process
		}
		return syscall.Kill(-pgid, syscall.SIGKILL) == nil
	}
	// Leader gone: members of its group may remain (forked children).
	return syscall.Kill(-pgid, syscall.SIGKILL) == nil
}

// KillUser sends SIGKILL to every process whose real or effective user id is
// uid, again until none is left (a process may fork while it is being
// killed), for at most a second. It returns how many it killed. Only for a
// user that runs nothing but dartup's workers of one app: never root.
func KillUser(uid uint32) int {
	if uid == 0 {
		return 0
	}
	killed := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		pids := pidsOfUser(uid)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			orphan := isOrphanChild(pid)
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
				if orphan {
					go reap(pid) // re-parented here (see EnableOrphanReaper): ours to reap
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return killed
}

// pidsOfUser lists the live (not zombie) processes whose real or effective
// user id is uid.
func pidsOfUser(uid uint32) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := strconv.FormatUint(uint64(uid), 10)
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var uids []string
		zombie := false
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				uids = strings.Fields(v)
			}
			if v, ok := strings.CutPrefix(line, "State:"); ok {
				zombie = strings.HasPrefix(strings.TrimSpace(v), "Z")
			}
		}
		if !zombie && len(uids) >= 2 && (uids[0] == want || uids[1] == want) {
			out = append(out, pid)
		}
	}
	return out
}
