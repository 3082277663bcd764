package lambdas_test

import (
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/lambdas"
)

// A worker's timers are set again for each invocation, never one left from
// before: back-to-back invocations that take longer together than the
// timeout all succeed on the same worker, the next slow one still times
// out after its own timeout, and keep-warm counts from the last answer.
func TestTimersAcrossInvocations(t *testing.T) {
	r := newRig(t)
	const timeout, keepWarm = 600 * time.Millisecond, 1500 * time.Millisecond
	r.deployGo("timers", helloPkg, func(l *clientsdk.LambdaSpec) {
		l.Timeout, l.KeepWarm, l.MaxWorkers = clientsdk.Duration(timeout), dur(keepWarm), 1
	})
	pid := r.pid("timers")
	start := time.Now()
	for range 6 {
		if _, e := r.invoke("timers", map[string]any{"sleep_ms": 150}); e != nil {
			t.Fatalf("an invocation within its timeout: %v", e)
		}
	}
	if took := time.Since(start); took < timeout {
		t.Fatalf("the invocations took %s together, less than the timeout: the test proves nothing", took)
	}
	if p := r.pid("timers"); p != pid {
		t.Fatalf("the worker was replaced (%d, then %d)", pid, p)
	}
	// Keep-warm from the last answer: idle twice for most of it.
	for range 2 {
		time.Sleep(keepWarm * 2 / 3) // the keep-warm period itself is what is tested
		if p := r.pid("timers"); p != pid {
			t.Fatalf("the worker was stopped before keep-warm since its last answer (%d, then %d)", pid, p)
		}
	}
	t0 := time.Now()
	_, e := r.invoke("timers", map[string]any{"sleep_ms": 5000})
	wantCode(t, e, 504)
	if took := time.Since(t0); took < timeout || took > timeout+2*time.Second {
		t.Fatalf("the slow invocation timed out after %s, want its own timeout of %s", took, timeout)
	}
	st, _, _ := r.m.Stats("timers")
	if st.Timeouts != 1 {
		t.Fatalf("stats %+v, want exactly 1 timeout", st)
	}
}

// Requests that wait in the queue get 504 each after its own Timeout
// there: the one queue timer fires for the first and is set again for the
// next.
func TestQueueDeadlines(t *testing.T) {
	r := newRig(t, lambdas.WithInitTimeout(time.Minute))
	const timeout = 500 * time.Millisecond
	r.deployPuppet(spec(t, "queued", 1, func(l *clientsdk.LambdaSpec) {
		l.Timeout, l.MaxWorkers = clientsdk.Duration(timeout), 1
	})) // its worker never asks for an event: requests wait in the queue
	t0 := time.Now()
	first := invokeAsync(t, r, "queued", []byte("1"))
	time.Sleep(300 * time.Millisecond) // a gap between the two deadlines, not a wait for a condition
	second := invokeAsync(t, r, "queued", []byte("2"))
	e1 := clientsdk.ErrorFromMsg(reply(t, first))
	at1 := time.Since(t0)
	e2 := clientsdk.ErrorFromMsg(reply(t, second))
	at2 := time.Since(t0)
	for _, e := range []*clientsdk.Error{e1, e2} {
		if e == nil || e.Code != 504 || e.Type != lambdas.TypeTimedOut {
			t.Fatalf("a request that waited its timeout in the queue got %v", e)
		}
	}
	if at1 < timeout || at2 < 300*time.Millisecond+timeout || at2-at1 < 200*time.Millisecond {
		t.Fatalf("answered after %s and %s, want each after its own %s in the queue", at1, at2, timeout)
	}
}
