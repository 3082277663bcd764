package lambdas_test

import (
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

// leafMember subscribes lambda.NAME in the runners' queue group through
// the broker's leaf-node server, as serve's direct-mode fallback does: the
// hub gives it a request only when no client member is left. It answers
// "other" and counts what it got on got.
func leafMember(t *testing.T, r *rig, name string, got chan<- struct{}) {
	t.Helper()
	fb := r.b.FallbackConn()
	sub, err := fb.QueueSubscribe(clientsdk.LambdaSubject(name), clientsdk.LambdaQueueGroup, func(m *nats.Msg) {
		_ = m.Respond([]byte("other"))
		select {
		case got <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := fb.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// A full node whose queue empties while its presence probe waits for an
// answer (a direct host slow to answer, or fast requests) must not stay
// drained once the answer is yes: its workers are idle, none will look for
// work again, and until keep-warm stops them every request would go
// elsewhere — or find no member at all once the other host goes.
func TestOverflowProbeAnsweredAfterTheQueueEmptied(t *testing.T) {
	r := newMixedRig(t) // r.m: a direct Manager not hosting the lambda
	got := make(chan struct{}, 64)
	leafMember(t, r.rig, "late", got)
	bin := testutil.BuildGo(t, nativePkg)
	if err := r.m2.Deploy(spec(t, "late", 1, func(l *clientsdk.LambdaSpec) {
		l.Protocol = clientsdk.ProtocolNATS
		l.MaxWorkers, l.Queue, l.KeepWarm = 1, 1, dur(time.Minute)
	}), lambdas.Command{Path: bin, Env: []string{"NATS_URL=" + r.b.NATSURL(), "DARTUP_APP=late"}}); err != nil {
		t.Fatal(err)
	}
	if got := r.mustInvoke("late", `{"name":"w"}`); got != "Hello, w!" {
		t.Fatalf("warm-up answered %q", got)
	}
	// The direct host answers the probe once the two requests the node
	// holds are answered (its queue is empty, its worker idle).
	inbox := nats.NewInbox()
	slow, err := r.client.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := r.client.SubscribeSync(clientsdk.LambdaHostedSubject("late"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.client.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // in order: running, queued
		if err := r.client.PublishRequest(clientsdk.LambdaSubject("late"), inbox, []byte(`{"sleep_ms":5,"name":"x"}`)); err != nil {
			t.Fatal(err)
		}
	}
	third := make(chan *nats.Msg, 1)
	go func() {
		m, _ := r.client.Request(clientsdk.LambdaSubject("late"), []byte(`{"name":"y"}`), 10*time.Second)
		third <- m
	}()
	p, err := probe.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no presence probe: %v", err)
	}
	for range 2 {
		if _, err := slow.NextMsg(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	_ = p.RespondMsg(&nats.Msg{Data: []byte("fake"), Header: nats.Header{clientsdk.HeaderLambdaDirect: []string{"1"}}})
	if m := <-third; m == nil || string(m.Data) != "Hello, y!" {
		t.Fatalf("the parked request: %v: want it run here, the queue having room again", m)
	}
	// The node is idle: it runs what comes now.
	for i := range 5 {
		if got := r.mustInvoke("late", `{"name":"z"}`); got != "Hello, z!" {
			t.Fatalf("request %d after the probe answered %q by another member: the idle node stays drained", i, got)
		}
	}
	if n := len(got); n != 0 {
		t.Fatalf("the leaf member got %d requests: the node passed on what it had room for", n)
	}
}

// A node drained for an overflow whose direct host goes (serve killed, or
// the lambda removed there) while its queue stays more than half full
// (long requests): no request reaches it any more, so none is passed on and
// finds no responders, and until its queue drained to half every caller
// would get "no responders" from a lambda it hosts. While drained, the node
// asks again every 2 s, and a "no" subscribes it again.
func TestOverflowDrainedNodeNoticesTheDirectHostGone(t *testing.T) {
	r := newMixedRig(t)
	bin := testutil.BuildGo(t, nativePkg)
	if err := r.m2.Deploy(spec(t, "gone", 1, func(l *clientsdk.LambdaSpec) {
		l.Protocol = clientsdk.ProtocolNATS
		l.MaxWorkers, l.Queue, l.Timeout = 1, 2, clientsdk.Duration(time.Minute)
	}), lambdas.Command{Path: bin, Env: []string{"NATS_URL=" + r.b.NATSURL(), "DARTUP_APP=gone"}}); err != nil {
		t.Fatal(err)
	}
	r.mustInvoke("gone", `{"name":"w"}`)
	// The direct host: a presence answer and a leaf member.
	presence, err := r.client.Subscribe(clientsdk.LambdaHostedSubject("gone"), func(m *nats.Msg) {
		_ = m.RespondMsg(&nats.Msg{Data: []byte("fake"), Header: nats.Header{clientsdk.HeaderLambdaDirect: []string{"1"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	leaf := r.b.FallbackConn()
	member, err := leaf.QueueSubscribe(clientsdk.LambdaSubject("gone"), clientsdk.LambdaQueueGroup, func(m *nats.Msg) { _ = m.Respond([]byte("other")) })
	if err != nil {
		t.Fatal(err)
	}
	for _, nc := range []*nats.Conn{r.client, leaf} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // in order: running, 2 queued, for longer than the test
		if err := r.client.PublishRequest(clientsdk.LambdaSubject("gone"), nats.NewInbox(), []byte(`{"sleep_ms":10000}`)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := r.client.Request(clientsdk.LambdaSubject("gone"), []byte(`{"name":"y"}`), 10*time.Second)
	if err != nil || string(m.Data) != "other" {
		t.Fatalf("the request over the full node: %v %v: want it passed on to the direct host", m, err)
	}
	// The direct host goes, as with kill -9.
	_ = presence.Unsubscribe()
	_ = member.Unsubscribe()
	for _, nc := range []*nats.Conn{r.client, leaf} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	gone := time.Now()
	testutil.WaitFor(t, 6*time.Second, "the node to answer again (429) rather than no responders", func() bool {
		m, err := r.client.Request(clientsdk.LambdaSubject("gone"), []byte(`{"name":"z"}`), 5*time.Second)
		if err != nil {
			return false
		}
		if e := clientsdk.ErrorFromMsg(m); e == nil || e.Code != 429 {
			t.Fatalf("answer %q %v: want 429 from the full node", m.Data, e)
		}
		return true
	})
	t.Logf("callers got no responders for %s after the direct host went", time.Since(gone).Round(time.Millisecond))
}

// A request parked for a presence probe while the lambda is redeployed on
// the node is given to the new revision, which has room, whatever the
// probe answers — not answered 429 by the replaced one, which was full.
func TestOverflowParkedDuringRedeployRunsOnTheNewRevision(t *testing.T) {
	r := newMixedRig(t)
	bin := testutil.BuildGo(t, nativePkg)
	cmd := lambdas.Command{Path: bin, Env: []string{"NATS_URL=" + r.b.NATSURL(), "DARTUP_APP=redo"}}
	revision := func(rev uint64) clientsdk.AppSpec {
		return spec(t, "redo", rev, func(l *clientsdk.LambdaSpec) { l.Protocol = clientsdk.ProtocolNATS; l.MaxWorkers, l.Queue = 1, 1 })
	}
	if err := r.m2.Deploy(revision(1), cmd); err != nil {
		t.Fatal(err)
	}
	r.mustInvoke("redo", `{"name":"w"}`)
	probe, err := r.client.SubscribeSync(clientsdk.LambdaHostedSubject("redo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.client.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // in order: running, queued
		if err := r.client.PublishRequest(clientsdk.LambdaSubject("redo"), nats.NewInbox(), []byte(`{"sleep_ms":3000}`)); err != nil {
			t.Fatal(err)
		}
	}
	third := make(chan *nats.Msg, 1)
	go func() {
		m, _ := r.client.Request(clientsdk.LambdaSubject("redo"), []byte(`{"name":"y"}`), 10*time.Second)
		third <- m
	}()
	next := revision(2)
	if _, err := probe.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("no presence probe: %v", err)
	}
	if err := r.m2.Deploy(next, cmd); err != nil {
		t.Fatal(err)
	}
	// No direct host answers: the probe says no (50 ms after it was sent;
	// Deploy drops the replaced revision's subscription well before).
	m := <-third
	if m == nil || string(m.Data) != "Hello, y!" {
		t.Fatalf("the parked request: %v: want it run by the new revision", clientsdk.ErrorFromMsg(m))
	}
}
