package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
)

func TestCollections(t *testing.T) {
	const mb = 1 << 20
	quiet, gain := uint64(QuietBytes), uint64(MinGain)
	prev := Sample{Allocs: 100 * mb}
	settled := State{Quiet: SettleChecks, TrimmedAt: 100*mb - BurstBytes}
	cases := []struct {
		name string
		now  Sample
		st   State
		want int
	}{
		{"busy: Go's pacing applies", Sample{Allocs: 100*mb + quiet, Objects: 60 * mb, Live: 10 * mb}, State{}, 0},
		{"quiet with garbage: two (pools empty over two)", Sample{Allocs: 100 * mb, Objects: 30 * mb, Live: 10 * mb}, State{}, 2},
		{"quiet with free pages", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb, Free: 5 * mb}, State{}, 2},
		{"quiet, little to give", Sample{Allocs: 100*mb + quiet - 1, Objects: 12 * mb, Live: 10 * mb, Free: mb}, State{}, 0},
		{"a quarter of a large live heap is the bar", Sample{Allocs: 100 * mb, Objects: 110 * mb, Live: 100 * mb, Free: 10 * mb}, State{}, 0},
		{"over a quarter of a large live heap", Sample{Allocs: 100 * mb, Objects: 120 * mb, Live: 100 * mb, Free: 6 * mb}, State{}, 2},
		{"after a collection that freed much: again", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb}, State{InRow: 1, Freed: 8 * mb}, 1},
		{"after one that freed little: wait for garbage", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb}, State{InRow: 1, Freed: mb - 1}, 0},
		{"not more than three in a row", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb}, State{InRow: 3, Freed: 8 * mb}, 0},
		{"a run ends when busy", Sample{Allocs: 200 * mb, Objects: 10 * mb, Live: 10 * mb}, State{InRow: 1, Freed: 8 * mb}, 0},
		{"settled after a burst: two, though nothing reads as garbage", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb}, settled, 2},
		{"after a burst, not yet settled", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb}, State{Quiet: SettleChecks - 1, TrimmedAt: settled.TrimmedAt}, 0},
		{"settled, but too little allocated since the last collection", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb}, State{Quiet: 1000, TrimmedAt: settled.TrimmedAt + 1}, 0},
		{"a burst that is still going on", Sample{Allocs: 100*mb + quiet, Objects: 10 * mb, Live: 10 * mb}, settled, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Collections(prev, c.now, c.st, quiet, gain); got != c.want {
				t.Fatalf("Collections = %d, want %d", got, c.want)
			}
		})
	}
}

var sink [][]byte

// With Go's own collections off, the garbage a burst left is collected
// and its pages returned once the process is quiet.
func TestRunReturnsABurstsGarbage(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	buf := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(buf)
	objects, released := buf[0].Value.Uint64(), buf[1].Value.Uint64()
	if objects < 64<<20 {
		t.Fatalf("the burst left %d bytes of heap objects", objects)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run(ctx, nil, 20*time.Millisecond); close(done) }()
	testutil.WaitFor(t, 5*time.Second, "the garbage to be collected and its pages returned", func() bool {
		metrics.Read(buf)
		return buf[0].Value.Uint64() < objects-48<<20 && buf[1].Value.Uint64() > released+48<<20
	})
	cancel()
	<-done
}

// Buffers put back into a sync.Pool (as nats-server's file store does with
// its block buffers) are live to the runtime until a second collection:
// one collection moves them to the pool's victim cache and frees nothing.
// A quiet process still frees them.
func TestRunEmptiesSyncPools(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var pool sync.Pool
	for range 48 {
		pool.Put(make([]byte, 1<<20))
	}
	buf := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(buf)
	objects := buf[0].Value.Uint64()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run(ctx, nil, 20*time.Millisecond); close(done) }()
	testutil.WaitFor(t, 5*time.Second, "the pooled buffers to be freed", func() bool {
		metrics.Read(buf)
		return buf[0].Value.Uint64() < objects-40<<20
	})
	cancel()
	<-done
}
