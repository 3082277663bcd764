package lambdas_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

// Direct mode (WithFallbackConn): the native tests, with workers that
// take their requests themselves and the Manager as the fallback.

func TestDirectInvoke(t *testing.T)            { nativeInvoke(t, newDirectRig(t)) }
func TestDirectTimeoutAndDeath(t *testing.T)   { nativeTimeoutAndDeath(t, newDirectRig(t)) }
func TestDirectLimitsAndKeepWarm(t *testing.T) { nativeLimitsAndKeepWarm(t, newDirectRig(t)) }
func TestDirectHostileNotices(t *testing.T)    { nativeHostileNotices(t, newDirectRig(t)) }
func TestDirectSecret(t *testing.T)            { nativeSecretIsNoRuntimeAPIPath(t, newDirectRig(t)) }
func TestDirectRedeploy(t *testing.T)          { nativeRedeploy(t, newDirectRig(t)) }

// A warm direct worker takes every request of a caller that sends them
// back to back: no second worker starts; an event over 6 MiB, which no
// longer passes through dartup, is refused by the worker (413), which
// stays.
func TestDirectBackToBack(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("seq", nil)
	if got := r.mustInvoke("seq", map[string]any{"env": clientsdk.EnvLambdaDirect}); got != clientsdk.LambdaQueueGroup {
		t.Fatalf("%s = %q", clientsdk.EnvLambdaDirect, got)
	}
	pid := r.pid("seq")
	for i := range 300 {
		if got := r.mustInvoke("seq", strconv.Itoa(i)); got != "Hello, "+strconv.Itoa(i)+"!" {
			t.Fatalf("request %d answered %q", i, got)
		}
	}
	_, e := r.invoke("seq", strings.Repeat("a", lambdas.MaxEventBytes+1))
	wantCode(t, e, 413)
	if e.Type != lambdas.TypeRequestTooLarge {
		t.Fatalf("413 type %q", e.Type)
	}
	if p := r.pid("seq"); p != pid {
		t.Fatalf("pid %d, then %d", pid, p)
	}
	var st clientsdk.LambdaStats
	testutil.WaitFor(t, 5*time.Second, "the invocations counted", func() bool {
		st, _, _ = r.m.Stats("seq")
		return st.Invocations == 304
	})
	if st.ColdStarts != 1 || st.Errors != 1 {
		t.Fatalf("back-to-back calls: stats %+v, want one cold start", st)
	}
}

// exactlyOnce sends n requests to lambda name from callers goroutines,
// each waiting for its answer before it sends the next (a closed loop:
// during runs meanwhile), each request with its own reply subject. It
// returns how many answers each got and the first (after a quiet moment
// for late duplicates); a request unanswered for 30 s fails the test.
func (r *rig) exactlyOnce(name string, n, callers int, during func()) (counts []int32, answers []string) {
	r.t.Helper()
	counts = make([]int32, n)
	answers = make([]string, n)
	answered := make([]chan struct{}, n)
	for i := range answered {
		answered[i] = make(chan struct{})
	}
	prefix := nats.NewInbox()
	sub, err := r.client.Subscribe(prefix+".*", func(m *nats.Msg) {
		i, err := strconv.Atoi(m.Subject[len(prefix)+1:])
		if err != nil || i < 0 || i >= n {
			return
		}
		if atomic.AddInt32(&counts[i], 1) == 1 {
			answers[i] = string(m.Data)
			if e := clientsdk.ErrorFromMsg(m); e != nil {
				answers[i] = fmt.Sprintf("error %d %s", e.Code, e.Type)
			}
			close(answered[i])
		}
	})
	if err != nil {
		r.t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)
	if err := r.client.Flush(); err != nil {
		r.t.Fatal(err)
	}
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	var lost atomic.Int32
	for range callers {
		wg.Go(func() {
			for i := range next {
				m := &nats.Msg{Subject: clientsdk.LambdaSubject(name), Reply: prefix + "." + strconv.Itoa(i), Data: []byte(strconv.Itoa(i)),
					Header: nats.Header{clientsdk.HeaderRequestID: {"req-" + strconv.Itoa(i)}}}
				if err := r.client.PublishMsg(m); err != nil {
					r.t.Error(err)
				}
				select {
				case <-answered[i]:
				case <-time.After(30 * time.Second):
					lost.Add(1)
					r.t.Logf("request %d: no answer", i)
				}
			}
		})
	}
	if during != nil {
		during()
	}
	wg.Wait()
	if l := lost.Load(); l > 0 {
		r.t.Fatalf("%d of %d requests got no answer within 30s", l, n)
	}
	_ = r.client.Flush()
	time.Sleep(300 * time.Millisecond) // room for a duplicate answer to show
	_ = r.client.Flush()
	return counts, answers
}

// A burst of 200 concurrent requests on 4 workers at most: each is answered
// exactly once, by the function.
func TestDirectBurstExactlyOnce(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("burst", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 4; l.Queue = 200 })
	counts, answers := r.exactlyOnce("burst", 200, 200, nil)
	for i := range counts {
		if counts[i] != 1 || answers[i] != "Hello, "+strconv.Itoa(i)+"!" {
			t.Errorf("request %d: %d answers, %q", i, counts[i], answers[i])
		}
	}
	var st clientsdk.LambdaStats
	testutil.WaitFor(t, 5*time.Second, "200 invocations counted", func() bool {
		st, _, _ = r.m.Stats("burst")
		return st.Invocations == 200
	})
	if st.ColdStarts > 4 || st.Errors != 0 || r.warm("burst") > 4 {
		t.Fatalf("stats %+v, %d warm", st, r.warm("burst"))
	}
}

// New revisions and keep-warm expiries while requests stream in: no
// request is lost or answered twice, and none fails.
func TestDirectRedeployUnderLoad(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("load", func(l *clientsdk.LambdaSpec) {
		l.MaxWorkers = 3
		l.Queue = 1000
		l.KeepWarm = dur(50 * time.Millisecond)
	})
	bin := testutil.BuildGo(t, nativePkg)
	counts, answers := r.exactlyOnce("load", 1500, 8, func() {
		for rev := uint64(2); rev <= 4; rev++ {
			time.Sleep(150 * time.Millisecond)
			s := spec(t, "load", rev, func(l *clientsdk.LambdaSpec) {
				l.Protocol = clientsdk.ProtocolNATS
				l.MaxWorkers = 3
				l.Queue = 1000
				l.KeepWarm = dur(50 * time.Millisecond)
			})
			if err := r.deploy(s, lambdas.Command{Path: bin, Env: []string{"NATS_URL=" + r.b.NATSURL(), "DARTUP_APP=load"}}); err != nil {
				t.Error(err)
			}
		}
	})
	for i := range counts {
		if counts[i] != 1 || answers[i] != "Hello, "+strconv.Itoa(i)+"!" {
			t.Errorf("request %d: %d answers, %q", i, counts[i], answers[i])
		}
	}
	if got := r.mustInvoke("load", map[string]any{"env": "AWS_LAMBDA_FUNCTION_VERSION"}); got != "4" {
		t.Fatalf("served by revision %q after the deploys", got)
	}
	// Requests paced around the keep-warm: workers drain and stop between
	// and during them; each request is still answered.
	for i := range 40 {
		if got := r.mustInvoke("load", strconv.Itoa(i)); got != "Hello, "+strconv.Itoa(i)+"!" {
			t.Fatalf("paced request %d answered %q", i, got)
		}
		time.Sleep(time.Duration(30+i%5*10) * time.Millisecond) // pacing around the 50 ms keep-warm
	}
	st, _, _ := r.m.Stats("load")
	if st.Errors != 0 || st.Throttled != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A worker that does not do direct mode (as the Dart package's) is handed
// its events by the same Manager, next to a direct lambda.
func TestDirectHandOverBeside(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("direct", nil)
	r.deployGo("handed", nativePkg, func(l *clientsdk.LambdaSpec) { l.Protocol = clientsdk.ProtocolNATS; l.MaxWorkers = 2; l.Queue = 100 },
		"NATS_URL="+r.b.NATSURL(), "DARTUP_APP=handed", "LAMBDANATIVE_HANDOVER=1")
	if got := r.mustInvoke("handed", map[string]any{"env": clientsdk.EnvLambdaDirect}); got != "" {
		t.Fatalf("the hand-over worker saw %s=%q", clientsdk.EnvLambdaDirect, got)
	}
	pid := r.pid("handed")
	for i := range 50 {
		for _, name := range []string{"direct", "handed"} {
			if got := r.mustInvoke(name, strconv.Itoa(i)); got != "Hello, "+strconv.Itoa(i)+"!" {
				t.Fatalf("%s request %d answered %q", name, i, got)
			}
		}
	}
	if p := r.pid("handed"); p != pid {
		t.Fatalf("hand-over worker pid %d, then %d", pid, p)
	}
	_, e := r.invoke("handed", map[string]any{"error": "nope"})
	wantCode(t, e, 500)
	counts, answers := r.exactlyOnce("handed", 100, 10, nil)
	for i := range counts {
		if counts[i] != 1 || answers[i] != "Hello, "+strconv.Itoa(i)+"!" {
			t.Errorf("request %d: %d answers, %q", i, counts[i], answers[i])
		}
	}
}
