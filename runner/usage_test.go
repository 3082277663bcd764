package runner

import (
	"testing"
	"time"
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
