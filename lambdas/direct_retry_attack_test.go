package lambdas_test

import (
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// An async event's retry carries the request id of its first attempt
// (broker/async_event.go), as AWS's do. A direct worker that dies within
// the first millisecond of the retry leaves its in-flight file naming that
// id, after the first attempt's record if it still held it: the retry's
// caller must get 502 at once, not wait for its own timeout, and both
// attempts are counted once.
func TestDirectRetryWithSameIDCrashAnswers502(t *testing.T) {
	for _, c := range []struct{ name, first string }{
		{"first over within 1 ms", `{"error":"try again"}`},
		{"first took 5 ms", `{"sleep_ms":5,"error":"try again"}`}, // a took notice: timed by dartup
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newDirectRig(t)
			r.deployNative("retry", func(l *clientsdk.LambdaSpec) {
				l.MaxWorkers = 1
				l.Timeout = clientsdk.Duration(10 * time.Second)
			})
			r.mustInvoke("retry", "warm")
			id := clientsdk.NewRequestID()
			call := func(event string, wait time.Duration) (*nats.Msg, error) {
				m := nats.NewMsg(clientsdk.LambdaSubject("retry"))
				m.Header.Set(clientsdk.HeaderRequestID, id)
				m.Data = []byte(event)
				return r.client.RequestMsg(m, wait)
			}
			first, err := call(c.first, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if e := clientsdk.ErrorFromMsg(first); e == nil {
				t.Fatalf("the first attempt: %q, want the function's error", first.Data)
			}
			r.m.Settle(time.Second) // its record is dartup's: the last it had of the worker
			t0 := time.Now()
			retry, err := call(`{"exit":3}`, 5*time.Second)
			if err != nil {
				t.Fatalf("the retry, whose worker died in it, got no answer within %s (%v): the in-flight file named the first attempt's id, and dartup took it for the request it had answered", time.Since(t0).Round(time.Millisecond), err)
			}
			wantCode(t, clientsdk.ErrorFromMsg(retry), 502)
			testutil.WaitFor(t, 5*time.Second, "the crash counted once", func() bool {
				st, _, _ := r.m.Stats("retry")
				return st.Invocations == 3 && st.Errors == 2
			})
		})
	}
}
