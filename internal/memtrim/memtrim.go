// Package memtrim gives memory back to the system once a process has gone
// quiet. Go collects garbage when the heap has grown by GOGC percent and
// otherwise every two minutes, and returns freed pages slowly; a supervisor
// that starts a hundred workers and then idles would hold the garbage of
// that burst (and the buffers nats-server's file store keeps until a
// collection takes them) for minutes. While the process allocates little,
// Run collects and returns the free pages (debug.FreeOSMemory) when there
// is enough to give back, or once it has settled after a burst of work,
// always twice (sync.Pools empty over two collections) and again while
// each collection frees more. Under load it does nothing: the process is
// not quiet, and Go's own pacing applies.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults: a check every Interval; a process that allocated less than
// QuietBytes since the last check is quiet; a quiet process collects when
// its garbage and free pages together reach MinGain (or a quarter of its
// live heap, if more), or, after a burst of BurstBytes allocated since its
// last collection, once it has been quiet for SettleChecks checks in a row.
const (
	Interval   = time.Second
	QuietBytes = 512 << 10
	MinGain    = 4 << 20
	// maxInRow bounds the collections in a row that each freed at least
	// MinFreed: what emptying sync.Pools takes.
	maxInRow = 3
	// MinFreed is what a collection must have freed for another to follow.
	MinFreed = 1 << 20
	// BurstBytes allocated since the last collection this package ran make
	// a burst: what it left in sync.Pools is not garbage to the runtime's
	// metrics (nats-server's file store recycles its 1–8 MiB block buffers
	// into pools), so only two collections tell.
	BurstBytes = 16 << 20
	// SettleChecks is how long (in checks) a process must have been quiet
	// after a burst: nats-server hands a block's cache buffer back to its
	// pool 10 s after the block's last read or write.
	SettleChecks = 12
)

// Sample is what a decision needs from the runtime.
type Sample struct {
	Allocs  uint64 // bytes allocated since the start
	Objects uint64 // bytes of heap objects: live, and garbage not yet collected
	Live    uint64 // live heap bytes as of the last collection
	Free    uint64 // free heap bytes not yet returned to the system
}

// State is what a decision remembers.
type State struct {
	InRow     int    // collections done in a row
	Freed     uint64 // what the last of them freed
	Quiet     int    // quiet checks in a row, this one included
	TrimmedAt uint64 // Sample.Allocs after the last collection this package ran
}

// Collections reports how many collections to run now (0, 1 or 2), given
// the sample of the previous check and this one: only a quiet process
// (allocated less than quiet bytes between them) collects, either to
// continue a run of collections that each freed at least MinFreed (one),
// or because its garbage and free pages reach the larger of minGain and a
// quarter of its live heap, or because it has settled after a burst (two:
// what sits in sync.Pools is freed by the second). st.Quiet counts this
// check.
func Collections(prev, now Sample, st State, quiet, minGain uint64) int {
	if now.Allocs-prev.Allocs >= quiet {
		return 0
	}
	if st.InRow > 0 && st.InRow < maxInRow && st.Freed >= MinFreed {
		return 1
	}
	gain := now.Free
	if now.Objects > now.Live {
		gain += now.Objects - now.Live
	}
	if gain >= max(minGain, now.Live/4) {
		return 2
	}
	if now.Allocs-st.TrimmedAt >= BurstBytes && st.Quiet >= SettleChecks {
		return 2
	}
	return 0
}

var names = []string{
	"/gc/heap/allocs:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/free:bytes",
}

// read samples the runtime's metrics into a Sample.
func read(buf []metrics.Sample) Sample {
	metrics.Read(buf)
	v := func(i int) uint64 {
		if buf[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return buf[i].Value.Uint64()
	}
	return Sample{Allocs: v(0), Objects: v(1), Live: v(2), Free: v(3)}
}

// Run checks every Interval until ctx ends, collecting and returning memory
// as Decide says; each collection is logged at debug level.
func Run(ctx context.Context, logger *slog.Logger) { run(ctx, logger, Interval) }

func run(ctx context.Context, logger *slog.Logger, interval time.Duration) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	buf := make([]metrics.Sample, len(names))
	for i, n := range names {
		buf[i].Name = n
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	prev := read(buf)
	st := State{TrimmedAt: prev.Allocs}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := read(buf)
		st.Quiet++
		if now.Allocs-prev.Allocs >= QuietBytes {
			st.Quiet = 0
		}
		n := Collections(prev, now, st, QuietBytes, MinGain)
		if n == 0 {
			st.InRow, st.Freed = 0, 0
			prev = now
			continue
		}
		start := time.Now()
		for range n {
			debug.FreeOSMemory()
		}
		after := read(buf)
		st.InRow++
		st.Freed = 0
		if now.Objects > after.Objects {
			st.Freed = now.Objects - after.Objects
		}
		st.TrimmedAt = after.Allocs
		logger.Debug("memory returned while quiet", "collections", n, "freed_heap", st.Freed, "free_pages", now.Free, "live", after.Live, "took", time.Since(start))
		prev = after
	}
}
