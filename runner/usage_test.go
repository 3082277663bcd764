package runner

import (
	"maps"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
)

func TestUsageWorthWriting(t *testing.T) {
	now := time.Unix(1000, 0)
	const mib = 1 << 20
	for _, c := range []struct {
		name        string
		oldCPU, cpu float64
		oldMem, mem uint64
		age         time.Duration
		want        bool
	}{
		{"idle, written a moment ago", 0.1, 0.2, 20 * mib, 20 * mib, 5 * time.Second, false},
		{"idle, written a minute ago", 0.1, 0.1, 20 * mib, 20 * mib, time.Minute, true},
		{"never written", 0, 0, 0, 0, 1000 * time.Hour, true},
		{"CPU up a point", 0.5, 1.5, 20 * mib, 20 * mib, 5 * time.Second, true},
		{"CPU down a point", 3, 2, 20 * mib, 20 * mib, 5 * time.Second, true},
		{"memory grew 5%", 0, 0, 20 * mib, 21 * mib, 5 * time.Second, false},
		{"memory grew 20%", 0, 0, 20 * mib, 24 * mib, 5 * time.Second, true},
		{"memory shrank 20%", 0, 0, 20 * mib, 16 * mib, 5 * time.Second, true},
		{"first memory figure", 0, 0, 0, 20 * mib, 5 * time.Second, true},
	} {
		if got := usageWorthWriting(c.oldCPU, c.oldMem, c.cpu, c.mem, now.Add(-c.age), now); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCountExit(t *testing.T) {
	for _, c := range []struct {
		ex   proc.Exit
		want string
	}{
		{proc.Exit{Code: 0}, "0"}, {proc.Exit{Code: 3}, "3"}, {proc.Exit{Code: 255}, "255"},
		{proc.Exit{Code: -1, Signal: "SIGKILL"}, "SIGKILL"}, {proc.Exit{Code: -1}, "unknown"}, {proc.Exit{Code: 300}, "unknown"},
	} {
		if got := exitKind(c.ex); got != c.want {
			t.Errorf("exitKind(%+v) = %q, want %q", c.ex, got, c.want)
		}
	}
	before := map[string]uint64{"1": 1}
	after := countExit(before, proc.Exit{Code: 1})
	if after["1"] != 2 || before["1"] != 1 {
		t.Fatalf("countExit must count into a copy: before %v after %v", before, after)
	}
	var exits map[string]uint64
	for code := 0; code < 100; code++ {
		exits = countExit(exits, proc.Exit{Code: code})
	}
	if len(exits) != clientsdk.MaxExitKinds || exits["other"] != uint64(100-(clientsdk.MaxExitKinds-1)) || exits["0"] != 1 {
		t.Fatalf("100 kinds of exit, at most %d kinds kept: %d, other %d", clientsdk.MaxExitKinds, len(exits), exits["other"])
	}
}

// The machine counts each exit of the instance's workers in its status,
// and the CPU time of the current worker.
func TestMachineCountsExitsAndCPU(t *testing.T) {
	m, _ := newMachine("n1", 0, specWith(func(*clientsdk.AppSpec) {}))
	m.on(started, t0)
	m.on(event{kind: evSample, cpu: 1, mem: 100, cpuSec: 2.5}, t0)
	if m.status.CPUSeconds != 2.5 {
		t.Fatalf("CPU seconds after a sample: %v", m.status.CPUSeconds)
	}
	m.on(exited(3, time.Minute), t0)
	m.on(started, t0)
	if m.status.CPUSeconds != 0 {
		t.Fatalf("a new worker's CPU seconds start from 0: %v", m.status.CPUSeconds)
	}
	m.on(event{kind: evExited, exit: proc.Exit{Code: -1, Signal: "SIGKILL"}, uptime: time.Minute}, t0)
	m.on(started, t0)
	m.on(exited(3, time.Minute), t0)
	if want := map[string]uint64{"3": 2, "SIGKILL": 1}; !maps.Equal(m.status.Exits, want) || m.status.Restarts != 3 {
		t.Fatalf("exits %v restarts %d, want %v and 3", m.status.Exits, m.status.Restarts, want)
	}
}
