package lambdas_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// statusRig is a rig whose Manager reports to the status bucket, and the
// bucket.
func statusRig(t testing.TB) (*rig, jetstream.KeyValue) {
	t.Helper()
	return statusRigOn(t, false)
}

// statusRigOn is statusRig, with direct mode for native lambdas when direct.
func statusRigOn(t testing.TB, direct bool) (*rig, jetstream.KeyValue) {
	t.Helper()
	var status jetstream.KeyValue
	r := newRigOn(t, direct, func(nc *nats.Conn) []lambdas.Option {
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if status, err = js.KeyValue(context.Background(), clientsdk.StatusBucket); err != nil {
			t.Fatal(err)
		}
		return []lambdas.Option{lambdas.WithStatusBucket(status)}
	})
	return r, status
}

// The status entry tells how many workers run an invocation and how many
// requests wait, while they do, and comes back to 0 once they are done.
func TestStatusBusyAndQueued(t *testing.T) {
	r, status := statusRig(t)
	r.deployGo("slow", helloPkg, func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 8 })
	if _, e := r.invoke("slow", map[string]any{}); e != nil { // a warm worker
		t.Fatal(e)
	}
	entry := func() clientsdk.InstanceStatus {
		var st clientsdk.InstanceStatus
		if e, err := status.Get(context.Background(), clientsdk.LambdaStatusKey("slow", "n1")); err == nil {
			_ = json.Unmarshal(e.Value(), &st)
		}
		return st
	}
	inbox := nats.NewInbox()
	answers, err := r.client.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := r.client.PublishRequest(clientsdk.LambdaSubject("slow"), inbox, []byte(`{"sleep_ms":2000}`)); err != nil {
			t.Fatal(err)
		}
	}
	// The first request runs for 2 s: the entry (written at most once a
	// second) shows the other two waiting.
	testutil.WaitFor(t, 10*time.Second, "1 busy worker and 2 queued requests in the status entry", func() bool {
		st := entry()
		return st.BusyWorkers == 1 && st.QueuedRequests == 2
	})
	for i := 0; i < 3; i++ {
		if _, err := answers.NextMsg(20 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 5*time.Second, "no busy worker and nothing queued once the requests were answered", func() bool {
		st := entry()
		return st.BusyWorkers == 0 && st.QueuedRequests == 0 && st.Lambda != nil && st.Lambda.Invocations == 4 && len(st.Lambda.DurationBuckets) > 0
	})
}

// A long invocation is written once as busy, not once a second: an entry
// that did not change is not written again.
func TestStatusNotRewrittenWhileUnchanged(t *testing.T) {
	r, status := statusRig(t)
	r.deployGo("long", helloPkg, func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1 })
	if _, e := r.invoke("long", map[string]any{}); e != nil {
		t.Fatal(e)
	}
	// The first invocation is recorded just after its answer is sent: its
	// entry first, or it would change the busy one below.
	testutil.WaitFor(t, 5*time.Second, "the first invocation in the status entry", func() bool {
		e, err := status.Get(context.Background(), clientsdk.LambdaStatusKey("long", "n1"))
		var st clientsdk.InstanceStatus
		return err == nil && json.Unmarshal(e.Value(), &st) == nil && st.BusyWorkers == 0 && st.Lambda != nil && st.Lambda.Invocations == 1
	})
	w, err := status.Watch(context.Background(), clientsdk.LambdaStatusKey("long", "n1"), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, e := r.invoke("long", map[string]any{"sleep_ms": 3500}); e != nil {
		t.Fatal(e)
	}
	busyWrites := 0
	testutil.WaitFor(t, 5*time.Second, "the entry written with no busy worker after the invocation", func() bool {
		for {
			select {
			case e := <-w.Updates():
				var st clientsdk.InstanceStatus
				if e == nil || json.Unmarshal(e.Value(), &st) != nil {
					continue
				}
				if st.BusyWorkers > 0 {
					busyWrites++
					continue
				}
				return st.Lambda != nil && st.Lambda.Invocations == 2
			default:
				return false
			}
		}
	})
	if busyWrites != 1 {
		t.Fatalf("a 3.5 s invocation was written %d times as busy, want once", busyWrites)
	}
}
