package broker

import "testing"

// The room a lowered store limit leaves: the store's share of the free
// space, at least a MiB, never taking the disk below minRecoverFree (where
// /healthz says the disk is full).
func TestFittingRoom(t *testing.T) {
	const k, m = 1 << 10, 1 << 20
	for _, c := range []struct {
		avail       int64
		localRunner bool
		want        int64
	}{
		{avail: 64 * m, localRunner: true, want: 64 * m / 8 * 3},    // the share
		{avail: 64 * m, localRunner: false, want: 64 * m / 4 * 3},   // the share, no runner here
		{avail: 2 * m, localRunner: true, want: 1 * m},              // at least a MiB
		{avail: 1200 * k, localRunner: false, want: 1200*k - 512*k}, // the share would leave too little
		{avail: 956 * k, localRunner: true, want: 956*k - 512*k},    // the flaky e2e case: 700 KiB before
		{avail: minRecoverFree, localRunner: true, want: 0},         // nothing to spare
		{avail: 100 * k, localRunner: true, want: 0},                // below the threshold
	} {
		if got := fittingRoom(c.avail, c.localRunner); got != c.want {
			t.Errorf("fittingRoom(%d, %v) = %d, want %d", c.avail, c.localRunner, got, c.want)
		}
		if got := fittingRoom(c.avail, c.localRunner); c.avail-got < minRecoverFree && got > 0 {
			t.Errorf("fittingRoom(%d) = %d leaves %d free, under minRecoverFree", c.avail, got, c.avail-got)
		}
	}
}
