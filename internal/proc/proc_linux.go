//go:build linux

package proc

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts the child in its own process group and asks the kernel to
// SIGKILL it when the runner dies, so workers never outlive a crashed runner.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
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

// StartTime returns the start time of pid in clock ticks since boot (field 22
// of /proc/PID/stat), which together with the pid identifies a process even
// after pid reuse. It returns 0 when the process does not exist.
func StartTime(pid int) uint64 {
	f := statFields(pid)
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// CPUTicks returns the user plus system CPU time pid has used, in clock ticks
// (fields 14 and 15 of /proc/PID/stat); ok is false when it does not exist.
func CPUTicks(pid int) (ticks uint64, ok bool) {
	f := statFields(pid)
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st, true
}

// statFields returns the fields of /proc/PID/stat after the command name
// (which may contain spaces and parentheses), so index 0 is field 3, the
// state; nil when the process does not exist.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
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
