package runner

import (
	"maps"
	"strconv"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
)

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

// exitKind names how a worker ended, as InstanceStatus.Exits counts it:
// its exit code ("0".."255"), the name of the signal that killed it
// ("SIGKILL"), or "unknown" when neither is known.
func exitKind(ex proc.Exit) string {
	switch {
	case ex.Signal != "":
		return ex.Signal
	case ex.Code >= 0 && ex.Code <= 255:
		return strconv.Itoa(ex.Code)
	}
	return "unknown"
}

// countExit returns a copy of exits with ex counted (a copy: the status
// written before may still be read). Beyond clientsdk.MaxExitKinds kinds,
// new ones count as "other".
func countExit(exits map[string]uint64, ex proc.Exit) map[string]uint64 {
	out := make(map[string]uint64, len(exits)+1)
	maps.Copy(out, exits)
	k := exitKind(ex)
	if _, ok := out[k]; !ok && len(out) >= clientsdk.MaxExitKinds-1 {
		k = "other"
	}
	out[k]++
	return out
}
