package memtrim

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
)

func TestDecide(t *testing.T) {
	const mb = 1 << 20
	quiet, gain := uint64(QuietBytes), uint64(MinGain)
	prev := Sample{Allocs: 100 * mb}
	cases := []struct {
		name string
		now  Sample
		st   State
		want bool
	}{
		{"busy: Go's pacing applies", Sample{Allocs: 100*mb + quiet, Objects: 60 * mb, Live: 10 * mb}, State{}, false},
		{"quiet with garbage", Sample{Allocs: 100 * mb, Objects: 30 * mb, Live: 10 * mb}, State{}, true},
		{"quiet with free pages", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb, Free: 5 * mb}, State{}, true},
		{"quiet, little to give", Sample{Allocs: 100*mb + quiet - 1, Objects: 12 * mb, Live: 10 * mb, Free: mb}, State{}, false},
		{"a quarter of a large live heap is the bar", Sample{Allocs: 100 * mb, Objects: 110 * mb, Live: 100 * mb, Free: 10 * mb}, State{}, false},
		{"over a quarter of a large live heap", Sample{Allocs: 100 * mb, Objects: 120 * mb, Live: 100 * mb, Free: 6 * mb}, State{}, true},
		{"after a collection that freed much: again (pools empty over two)", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb}, State{InRow: 1, Freed: 8 * mb}, true},
		{"after one that freed little: wait for garbage", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb}, State{InRow: 1, Freed: mb - 1}, false},
		{"not more than three in a row", Sample{Allocs: 100 * mb, Objects: 10 * mb, Live: 10 * mb}, State{InRow: 3, Freed: 8 * mb}, false},
		{"a run ends when busy", Sample{Allocs: 200 * mb, Objects: 10 * mb, Live: 10 * mb}, State{InRow: 1, Freed: 8 * mb}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Decide(prev, c.now, c.st, quiet, gain); got != c.want {
				t.Fatalf("Decide = %v, want %v", got, c.want)
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
