package lambdas_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

// mixedRig is a direct-mode Manager (as in `dartup serve`, node n1) and a
// second Manager without a leaf server (as in `dartup runner --server`,
// node n2) on the same broker, both hosting the lambdas deployed with
// deployBoth.
type mixedRig struct {
	*rig
	m2 *lambdas.Manager
}

func newMixedRig(t *testing.T) *mixedRig {
	t.Helper()
	r := newDirectRig(t)
	lambdas.SetProbeWait(t, 2*time.Second) // the direct node's answer, on a slow machine
	return &mixedRig{rig: r, m2: secondManager(t, r)}
}

// secondManager is another node's Manager (n2), without a leaf server, on
// r's broker, closed at the test's end.
func secondManager(t *testing.T, r *rig) *lambdas.Manager {
	t.Helper()
	nc2 := testutil.Connect(t, r.b.NATSURL())
	m2, err := lambdas.New(nc2, lambdas.WithNodeID("n2"), lambdas.WithStopGrace(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m2.Close(ctx); err != nil {
			t.Errorf("close the second manager: %v", err)
		}
	})
	return m2
}

// deployBoth deploys the native test worker as name on both Managers
// (the leafless one first, so that it is subscribed before any request).
func (r *mixedRig) deployBoth(name string, mod func(*clientsdk.LambdaSpec)) {
	r.deployEach(name, mod, mod)
}

// deployEach is deployBoth with the leafless node's spec changed by mod2
// and the direct node's by mod1.
func (r *mixedRig) deployEach(name string, mod2, mod1 func(*clientsdk.LambdaSpec)) {
	r.t.Helper()
	native := func(mod func(*clientsdk.LambdaSpec)) clientsdk.AppSpec {
		return spec(r.t, name, 1, func(l *clientsdk.LambdaSpec) { l.Protocol = clientsdk.ProtocolNATS; mod(l) })
	}
	cmd := lambdas.Command{Path: testutil.BuildGo(r.t, nativePkg), Env: []string{"NATS_URL=" + r.b.NATSURL(), "DARTUP_APP=" + name}}
	if err := r.m2.Deploy(native(mod2), cmd); err != nil {
		r.t.Fatal(err)
	}
	if err := r.deploy(native(mod1), cmd); err != nil {
		r.t.Fatal(err)
	}
}

// burst sends n requests of sleepMS at once and counts the answers by
// code (200 for a result); a request with no answer fails the test.
func (r *rig) burst(name string, n, sleepMS int) map[int]int {
	r.t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			m, err := r.client.Request(clientsdk.LambdaSubject(name), []byte(`{"sleep_ms":`+strconv.Itoa(sleepMS)+`,"name":"x"}`), 20*time.Second)
			code := 200
			switch e := clientsdk.ErrorFromMsg(m); {
			case err != nil:
				r.t.Errorf("request: %v", err)
				return
			case e != nil:
				code = e.Code
			case string(m.Data) != "Hello, x!":
				r.t.Errorf("answer %q", m.Data)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return codes
}

// A native lambda hosted by a direct-mode node and a node without a leaf
// server: the latter's subscription is a client member, which nats-server
// always prefers, yet a burst over its --max-workers and --queue is run by
// both (the direct node's fallback gets what it passes on), not answered
// 429 — round after round, so it subscribes again in between.
func TestOverflowReachesTheDirectNode(t *testing.T) {
	r := newMixedRig(t)
	r.deployBoth("spill", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 1 })
	for round := range 3 {
		if codes := r.burst("spill", 4, 300); codes[200] != 4 {
			t.Fatalf("round %d: answers %v: want all 4 run (2 nodes × (1 running + 1 queued))", round, codes)
		}
	}
	// Each run is counted just after its answer goes (a direct worker's
	// with its done notice).
	var st1, st2 clientsdk.LambdaStats
	testutil.WaitFor(t, 5*time.Second, "12 invocations counted over both nodes", func() bool {
		st1, _, _ = r.m.Stats("spill")
		st2, _, _ = r.m2.Stats("spill")
		return st1.Invocations+st2.Invocations >= 12
	})
	if st1.Invocations == 0 || st2.Invocations == 0 || st1.Invocations+st2.Invocations != 12 || st1.Throttled+st2.Throttled != 0 {
		t.Fatalf("stats: direct node %+v, other node %+v: want 12 invocations over both, each some, none throttled", st1, st2)
	}
}

// Without a node hosting the lambda in direct mode, a full node without a
// leaf server answers 429 as before, and stays subscribed: under a
// sustained overload no caller gets "no responders".
func TestOverflowWithoutDirectHostIsThrottled(t *testing.T) {
	r := newRig(t)
	r.deployNative("full", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 1 })
	stop := time.Now().Add(1500 * time.Millisecond)
	var ok, throttled atomic.Int32
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				m, err := r.client.Request(clientsdk.LambdaSubject("full"), []byte(`{"sleep_ms":100,"name":"x"}`), 10*time.Second)
				if err != nil {
					t.Errorf("request: %v", err) // no responders: the subscription was dropped
					return
				}
				if e := clientsdk.ErrorFromMsg(m); e != nil && e.Code == 429 {
					throttled.Add(1)
				} else if e != nil {
					t.Errorf("answer: %v", e)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() == 0 || throttled.Load() == 0 {
		t.Fatalf("%d answered, %d throttled: want both", ok.Load(), throttled.Load())
	}
}

// A request that was passed on clientsdk.MaxPassedOn times is answered 429
// where it finds the pool full, not passed on again; a forged count past
// it is the same.
func TestOverflowHopsAreBounded(t *testing.T) {
	r := newMixedRig(t)
	limits := func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 1 }
	// The direct node keeps no worker (none subscribed as a client member
	// after a request), so that the leafless node gets every request.
	r.deployEach("hops", limits, func(l *clientsdk.LambdaSpec) { limits(l); l.KeepWarm = dur(0) })
	// Fill the leafless node and learn that a direct host exists (the
	// first overflow probes).
	if codes := r.burst("hops", 4, 200); codes[200] != 4 {
		t.Fatalf("warm-up: %v", codes)
	}
	for _, hops := range []string{"2", "99"} {
		// On one connection, in order: the leafless node runs the first,
		// queues the second; the third finds it full.
		slow := r.sendInOrder("hops", 2, `{"sleep_ms":300}`)
		m := nats.NewMsg(clientsdk.LambdaSubject("hops"))
		m.Header.Set(clientsdk.HeaderPassedOn, hops)
		m.Data = []byte(`"x"`)
		resp, err := r.client.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := clientsdk.ErrorFromMsg(resp); e == nil || e.Code != 429 {
			t.Fatalf("%s hops: %q %+v: want 429 where it found the pool full, not passed on", hops, resp.Data, e)
		}
		for range 2 {
			if _, err := slow.NextMsg(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		_ = slow.Unsubscribe()
	}
}

// An overflowing node whose queue empties by timeouts, and whose worker is
// killed by its own, subscribes again although no worker is left to look
// for work: it takes requests again (it ran none while drained).
func TestOverflowComesBackAfterTimeouts(t *testing.T) {
	r := newMixedRig(t)
	r.deployBoth("slowpoke", func(l *clientsdk.LambdaSpec) {
		l.MaxWorkers = 1
		l.Queue = 1
		l.Timeout = clientsdk.Duration(time.Second)
	})
	codes := r.burst("slowpoke", 3, 5000) // leafless: running (504), queued (504); passed on: runs on n1 (504)
	if codes[504] != 3 {
		t.Fatalf("answers %v: want 3 timeouts", codes)
	}
	before, _, _ := r.m2.Stats("slowpoke")
	testutil.WaitFor(t, 10*time.Second, "the leafless node to take requests again", func() bool {
		r.invoke("slowpoke", "back") // run by either node
		st, _, _ := r.m2.Stats("slowpoke")
		return st.Invocations > before.Invocations
	})
}

// sendInOrder sends n requests with body to lambda name from the rig's
// caller connection, one after another (the node gets them in that order),
// and returns the subscription their answers come to.
func (r *rig) sendInOrder(name string, n int, body string) *nats.Subscription {
	r.t.Helper()
	inbox := nats.NewInbox()
	sub, err := r.client.SubscribeSync(inbox)
	if err != nil {
		r.t.Fatal(err)
	}
	for range n {
		if err := r.client.PublishRequest(clientsdk.LambdaSubject(name), inbox, []byte(body)); err != nil {
			r.t.Fatal(err)
		}
	}
	return sub
}

// fakeDirectHost answers lambda name's presence probes as a node hosting
// it in direct mode would (clientsdk.HeaderLambdaDirect), without being a
// member of its queue group: the leafless rig's Manager then passes on
// what it cannot take, to whatever else subscribes lambda.NAME.
func fakeDirectHost(t *testing.T, r *rig, name string) {
	t.Helper()
	lambdas.SetProbeWait(t, 2*time.Second) // its answer, on a slow machine
	sub, err := r.client.Subscribe(clientsdk.LambdaHostedSubject(name), func(m *nats.Msg) {
		_ = m.RespondMsg(&nats.Msg{Data: []byte("fake"), Header: nats.Header{clientsdk.HeaderLambdaDirect: []string{"1"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.client.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// A request on a subscription the native dispatcher has no record of (one
// that arrives before a new subscription is recorded, or after a replaced
// revision's was forgotten) is taken by the lambda's current revision, not
// dropped for its caller to time out.
func TestNativeDispatcherTakesUnrecordedSubscription(t *testing.T) {
	r := newRig(t)
	r.deployNative("orphan", nil)
	r.mustInvoke("orphan", "warm")
	r.m.ForgetSubscription("orphan")
	m, err := r.client.Request(clientsdk.LambdaSubject("orphan"), []byte(`"x"`), 5*time.Second)
	if err != nil {
		t.Fatalf("%v: want the current revision's answer", err)
	}
	if string(m.Data) != `Hello, "x"!` {
		t.Fatalf("%q: want the current revision's answer", m.Data)
	}
}
