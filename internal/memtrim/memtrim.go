// Package memtrim gives memory back to the system once a process has gone
// quiet. Go collects garbage when the heap has grown by GOGC percent and
// otherwise every two minutes, and returns freed pages slowly; a supervisor
// that starts a hundred workers and then idles would hold the garbage of
// that burst (and the buffers nats-server's file store keeps until a
// collection takes them) for minutes. While the process allocates little,
// Run collects and returns the free pages (debug.FreeOSMemory) when there
// is enough to give back, a few times in a row while each collection frees
// more (sync.Pools empty over two collections). Under load it does nothing:
// the process is not quiet, and Go's own pacing applies.
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
// live heap, if more).
const (
	Interval   = time.Second
	QuietBytes = 512 << 10
	MinGain    = 4 << 20
	// maxInRow bounds the collections in a row that each freed at least
	// MinFreed: what emptying sync.Pools takes.
	maxInRow = 3
	// MinFreed is what a collection must have freed for another to follow.
	MinFreed = 1 << 20
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
	InRow int    // collections done in a row
	Freed uint64 // what the last of them freed
}

// Decide reports whether to collect now, given the sample of the previous
// check and this one: only a quiet process (allocated less than quiet
// bytes between them) collects, either to continue a run of collections
// that each freed at least MinFreed, or because its garbage and free pages
// reach the larger of minGain and a quarter of its live heap.
func Decide(prev, now Sample, st State, quiet, minGain uint64) bool {
	if now.Allocs-prev.Allocs >= quiet {
		return false
	}
	if st.InRow > 0 && st.InRow < maxInRow && st.Freed >= MinFreed {
		return true
	}
	gain := now.Free
	if now.Objects > now.Live {
		gain += now.Objects - now.Live
	}
	return gain >= max(minGain, now.Live/4)
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
	var st State
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := read(buf)
		if !Decide(prev, now, st, QuietBytes, MinGain) {
			st = State{}
			prev = now
			continue
		}
		start := time.Now()
		debug.FreeOSMemory()
		after := read(buf)
		st.InRow++
		st.Freed = 0
		if now.Objects > after.Objects {
			st.Freed = now.Objects - after.Objects
		}
		logger.Debug("memory returned while quiet", "freed_heap", st.Freed, "free_pages", now.Free, "live", after.Live, "took", time.Since(start))
		prev = after
	}
}
