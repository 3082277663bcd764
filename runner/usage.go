package runner

import "time"

// Usage samples are taken every UsageInterval, but written to the status
// bucket only when they changed enough to matter to someone reading `list
// --wide`, or when the written figures are older than usageRefresh: 2,000
// idle instances cost about 33 status writes a second instead of 400 (each
// a synced write on a single server).
const (
	// usageRefresh bounds how old the written CPU and memory figures get.
	usageRefresh = time.Minute
	// usageCPUStep is the CPU change (percentage points) worth a write.
	usageCPUStep = 1.0
	// usageMemStep is the memory change (a fraction) worth a write.
	usageMemStep = 0.10
)

// usageWorthWriting reports whether a new CPU and memory sample should be
// written, given the figures written last and when.
func usageWorthWriting(oldCPU float64, oldMem uint64, cpu float64, mem uint64, writtenAt, now time.Time) bool {
	if now.Sub(writtenAt) >= usageRefresh {
		return true
	}
	if d := cpu - oldCPU; d >= usageCPUStep || d <= -usageCPUStep {
		return true
	}
	lo, hi := min(oldMem, mem), max(oldMem, mem)
	return float64(hi-lo) > usageMemStep*float64(max(oldMem, 1))
}
