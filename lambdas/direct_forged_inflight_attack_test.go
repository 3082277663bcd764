package lambdas_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// forgedInflight is an in-flight file of n made-up records (status 500,
// "Forged", an hour each, answered to reply), then rest.
func forgedInflight(n int, reply, rest string) string {
	b := []byte(clientsdk.InflightPrefix)
	for range n {
		b = clientsdk.AppendInflightHeld(b, clientsdk.DoneRecord{RequestID: clientsdk.NewRequestID(), Status: 500,
			ErrorType: "Forged", Reply: reply, Ran: time.Hour})
	}
	return string(b) + rest
}

// A direct worker that writes what it likes over its in-flight file and
// dies: dartup counts at most 192 records, in its own lambda's books only,
// each no longer than the timeout; publishes nothing to a subject that is
// not an inbox (a record's or a running request's reply subject); and
// reads nothing past a 0 byte or a line it refuses.
func TestDirectForgedInflightIsBounded(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("forger", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Timeout = clientsdk.Duration(2 * time.Second) })
	r.deployNative("honest", nil)
	r.mustInvoke("honest", "warm")
	leaked := make(chan *nats.Msg, 16)
	for _, s := range []string{"dartup.forged.>", "$JS.API.STREAM.DELETE.forged", "lambda.honest.forged"} {
		if _, err := r.client.ChanSubscribe(s, leaked); err != nil {
			t.Fatal(err)
		}
	}
	run := func(reply string) string {
		return string(clientsdk.AppendInflightRun(nil, clientsdk.NewRequestID(), reply, "", ""))
	}
	for _, c := range []struct {
		name   string
		file   string
		counts uint64 // records counted
	}{
		{"1,000 records", forgedInflight(1000, "", ""), clientsdk.MaxInflightRecords},
		{"another lambda's caller", forgedInflight(3, "_INBOX.honestcaller.1", ""), 3},
		{"a record answered to dartup's control subject", forgedInflight(2, "", "") + forgedInflight(2, "dartup.forged.x", "")[len(clientsdk.InflightPrefix):], 2},
		{"a running request answered to dartup's control subject", forgedInflight(1, "", run("dartup.forged.y")), 1},
		{"a running request answered to JetStream's API", run("$JS.API.STREAM.DELETE.forged"), 0},
		{"a running request answered to another lambda", run("lambda.honest.forged"), 0},
		{"records after a 0 byte", clientsdk.InflightPrefix + "\x00" + forgedInflight(5, "", "")[len(clientsdk.InflightPrefix):], 0},
		{"a line of 200 KiB", forgedInflight(1, "", strings.Repeat("x", 200<<10)), 1},
		{"not an in-flight file", "1\n" + clientsdk.NewRequestID() + "\n_INBOX.a\n\n", 0},
	} {
		before, _, _ := r.m.Stats("forger")
		crashes := r.countEvents(clientsdk.EventCrashed)
		ev, _ := json.Marshal(map[string]any{"inflight": c.file})
		took := uint64(0) // the forging request itself, when dartup heard of it (past 1 ms): 502
		if m, err := r.client.Request(clientsdk.LambdaSubject("forger"), ev, 1500*time.Millisecond); err == nil {
			if e := clientsdk.ErrorFromMsg(m); e == nil || e.Code != 502 {
				t.Fatalf("%s: the forging request was answered %q", c.name, m.Data)
			}
			took = 1
		}
		// The records are counted after the exit's event and 502 (a
		// late one shows in the next case's count).
		var st clientsdk.LambdaStats
		testutil.WaitFor(t, 10*time.Second, c.name+": the exit seen and the records counted", func() bool {
			st, _, _ = r.m.Stats("forger")
			return r.countEvents(clientsdk.EventCrashed) > crashes && st.Invocations-before.Invocations >= c.counts+took
		})
		r.m.Settle(time.Second)
		st, _, _ = r.m.Stats("forger")
		if got, errs := st.Invocations-before.Invocations-took, st.Errors-before.Errors-took; got != c.counts || errs != c.counts {
			t.Errorf("%s: %d records counted (%d errors), want %d", c.name, got, errs, c.counts)
		}
		if st.DurationSum-before.DurationSum > float64(c.counts+took)*2+1 {
			t.Errorf("%s: %.1f s of durations for %d records of the 2 s timeout at most", c.name, st.DurationSum-before.DurationSum, c.counts+took)
		}
	}
	select {
	case m := <-leaked:
		t.Fatalf("dartup published to %s for a forged file", m.Subject)
	default:
	}
	if hs, _, _ := r.m.Stats("honest"); hs.Invocations != 1 || hs.Errors != 0 {
		t.Fatalf("another lambda's books changed: %+v", hs)
	}
}

// A worker that puts a FIFO in its in-flight file's place (as dartup's own
// user it can) and dies does not hang dartup's reading of the file: the
// exit is seen as a crash, and the lambda goes on serving.
func TestDirectInflightFIFODoesNotHang(t *testing.T) {
	r := newDirectRig(t)
	r.deployNative("fifo", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Timeout = clientsdk.Duration(2 * time.Second) })
	r.mustInvoke("fifo", "warm")
	ev, _ := json.Marshal(map[string]any{"inflight_fifo": true})
	_, _ = r.client.Request(clientsdk.LambdaSubject("fifo"), ev, 500*time.Millisecond) // its caller: its own timeout, the file being gone
	testutil.WaitFor(t, 5*time.Second, "the exit seen as a crash", func() bool { return r.countEvents(clientsdk.EventCrashed) == 1 })
	if got := r.mustInvoke("fifo", "after"); got != "Hello, after!" {
		t.Fatalf("after the FIFO: %q", got)
	}
}
