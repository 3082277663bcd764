package lambdas_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// With --keep-warm 0 a direct worker serves the request that started it
// (and is then stopped): the queued request is offered to it before it is
// told to stop, so a cold request does not start worker after worker
// until it times out.
func TestDirectKeepWarmZeroServes(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("once", func(l *clientsdk.LambdaSpec) { l.KeepWarm = dur(0); l.Timeout = clientsdk.Duration(5 * time.Second) })
	for i := range 3 {
		if got := r.mustInvoke("once", strconv.Itoa(i)); got != "Hello, "+strconv.Itoa(i)+"!" {
			t.Fatalf("request %d answered %q", i, got)
		}
	}
	var st clientsdk.LambdaStats
	testutil.WaitFor(t, 5*time.Second, "3 invocations counted", func() bool {
		st, _, _ = r.m.Stats("once")
		return st.Invocations == 3
	})
	if st.Errors != 0 || st.ColdStarts > 3 {
		t.Fatalf("stats %+v", st)
	}
}

