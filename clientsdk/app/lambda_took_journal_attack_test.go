package app

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// A request that outlives tookAfter stays named in the in-flight file
// while it runs: its took notice may still be in the worker's connection
// when the worker dies, and dartup, which then never heard of it, answers
// its caller 502 only from the file (it reads the line only for a worker
// that was free in its view). It is named no more once it is over, before
// its done notice.
func TestDirectTookRequestStaysInJournalWhileItRuns(t *testing.T) {
	path := emptyInflightFile(t)
	r := newBatchRig(t, 16)
	tookAfter = 5 * time.Millisecond // restored by the rig
	release := sync.OnceFunc(func() { close(r.gate) })
	t.Cleanup(release) // before the rig stops the worker
	r.send("first")
	var id string
	for id == "" {
		if m := r.notice(); r.kind(m) == clientsdk.NoticeTook {
			id = m.Header.Get(clientsdk.HeaderRequestID)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, run, err := clientsdk.ParseInflight(b); err != nil || run == nil || run.RequestID != id {
		t.Fatalf("while request %s runs past its took notice, the file (%q) names %+v (err %v)", id, b, run, err)
	}
	release()
	r.answered(1)
	if b, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	if held, run, err := clientsdk.ParseInflight(b); err != nil || run != nil || len(held) != 0 {
		t.Fatalf("once it is over, the file (%q) names %d records and %+v (err %v)", b, len(held), run, err)
	}
}
