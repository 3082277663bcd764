package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/internal/lockfile"
	"github.com/dartup/dartup/internal/proc"
)

// pidDir records the process group and start time of every running worker,
// one file per instance key, so that a runner that was killed -9 can kill
// what is left of its workers (and their children) when it starts again.
type pidDir struct{ dir string }

func newPidDir(dir string) (*pidDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &pidDir{dir: dir}, nil
}

func (d *pidDir) add(key string, pid int) {
	_ = os.WriteFile(filepath.Join(d.dir, key), []byte(fmt.Sprintf("%d %d\n", pid, proc.StartTime(pid))), 0o600)
}

func (d *pidDir) remove(key string) { _ = os.Remove(filepath.Join(d.dir, key)) }

// killLeftovers kills every recorded group whose leader is still the recorded
// process (or whose leader is gone but members remain) and clears the records.
func (d *pidDir) killLeftovers() int {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		p := filepath.Join(d.dir, e.Name())
		b, err := os.ReadFile(p)
		if err == nil {
			f := strings.Fields(string(b))
			if len(f) == 2 {
				pid, _ := strconv.Atoi(f[0])
				start, _ := strconv.ParseUint(f[1], 10, 64)
				if proc.KillLeftover(pid, start) {
					n++
				}
			}
		}
		_ = os.Remove(p)
	}
	if n > 0 {
		time.Sleep(50 * time.Millisecond) // let the kernel reap them before new workers bind ports
	}
	return n
}

// usageSampler computes CPU% between samples and the resident memory, from
// one read of /proc/PID/stat (proc.Usage).
type usageSampler struct {
	lastTicks uint64
	lastAt    time.Time
}

const clockTicks = 100 // USER_HZ on Linux

func (u *usageSampler) sample(pid int) (cpu float64, rss uint64, ok bool) {
	ticks, rss, ok := proc.Usage(pid)
	if !ok {
		return 0, 0, false
	}
	now := time.Now()
	if !u.lastAt.IsZero() {
		cpu = float64(ticks-u.lastTicks) / clockTicks / now.Sub(u.lastAt).Seconds() * 100
	}
	u.lastTicks, u.lastAt = ticks, now
	return cpu, rss, true
}

// loadAverage returns the one-minute load average from /proc/loadavg.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// ErrDataDirInUse is returned by Start when another runner uses the data dir.
var ErrDataDirInUse = errors.New("runner data dir in use")

// lockDir locks path (DATA/runner/lock) for as long as this process runs.
func lockDir(path string) (*os.File, error) {
	f, holder, err := lockfile.Lock(path)
	if errors.Is(err, lockfile.ErrHeld) {
		return nil, fmt.Errorf("%w: %s is used by another dartup runner (pid %s), which would share its node id and run every instance twice; give each runner its own --data",
			ErrDataDirInUse, filepath.Dir(filepath.Dir(path)), holder)
	}
	return f, err
}
