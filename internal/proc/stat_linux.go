//go:build linux

package proc

import (
	"bytes"
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// procStat is what dartup reads from /proc/PID/stat (proc(5)).
type procStat struct {
	ppid      int    // field 4
	ticks     uint64 // utime + stime, fields 14 and 15, in clock ticks
	startTime uint64 // field 22, clock ticks since boot
	rssPages  uint64 // field 24
}

// statBufBytes holds any /proc/PID/stat line: 52 numbers after a command
// name of at most 64 bytes.
const statBufBytes = 1536

// readProcStat reads /proc/PID/stat into a buffer on the stack: the orphan
// sweep and the usage samples read it for many processes, often, and
// allocate nothing for it. ok is false when pid does not exist.
func readProcStat(pid int) (procStat, bool) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return procStat{}, false
	}
	var buf [statBufBytes]byte
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || m <= 0 {
			break
		}
		n += m
	}
	unix.Close(fd)
	return parseProcStat(buf[:n])
}

// parseProcStat parses a /proc/PID/stat line. The command name (field 2)
// may hold spaces and parentheses: the fields that follow start after its
// last ')'.
func parseProcStat(b []byte) (procStat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	var st procStat
	var utime uint64
	field := 2 // the command name
	for rest := b[i+1:]; ; {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			break
		}
		end := bytes.IndexAny(rest, " \n")
		if end < 0 {
			end = len(rest)
		}
		field++
		v := digits(rest[:end])
		switch field {
		case 4:
			st.ppid = int(v)
		case 14:
			utime = v
		case 15:
			st.ticks = utime + v
		case 22:
			st.startTime = v
		case 24:
			st.rssPages = v
			return st, true
		}
		rest = rest[end:]
	}
	return procStat{}, false
}

// digits returns the unsigned decimal number b holds (0 when it is not one).
func digits(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		v = v*10 + uint64(c-'0')
	}
	return v
}

// StartTime returns the start time of pid in clock ticks since boot (field 22
// of /proc/PID/stat), which together with the pid identifies a process even
// after pid reuse. It returns 0 when the process does not exist.
func StartTime(pid int) uint64 {
	st, _ := readProcStat(pid)
	return st.startTime
}

// CPUTicks returns the user plus system CPU time pid has used, in clock ticks
// (fields 14 and 15 of /proc/PID/stat); ok is false when it does not exist.
func CPUTicks(pid int) (ticks uint64, ok bool) {
	st, ok := readProcStat(pid)
	return st.ticks, ok
}

// Usage returns, from one read of /proc/PID/stat, the CPU time pid has used
// (user plus system, in clock ticks) and its resident memory in bytes; ok
// is false when it does not exist.
func Usage(pid int) (ticks, rssBytes uint64, ok bool) {
	st, ok := readProcStat(pid)
	return st.ticks, st.rssPages * uint64(os.Getpagesize()), ok
}
