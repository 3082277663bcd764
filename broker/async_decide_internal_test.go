package broker

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func errReply(code int, typ string) *nats.Msg {
	return clientsdk.ErrorReply("_INBOX.x", clientsdk.Errorf(code, typ, "it failed"))
}

func TestClassifyAnswer(t *testing.T) {
	ok := &nats.Msg{Data: []byte("fine")}
	for _, tc := range []struct {
		name string
		msg  *nats.Msg
		err  error
		want asyncResult
		code int
	}{
		{"success", ok, nil, resultOK, 0},
		{"function error", errReply(500, "HelloError"), nil, resultFailed, 500},
		{"worker died", errReply(502, "Runtime.ExitError"), nil, resultFailed, 502},
		{"start error", errReply(502, "Runtime.StartError"), nil, resultFailed, 502},
		{"timeout", errReply(504, "Sandbox.Timedout"), nil, resultFailed, 504},
		{"throttled", errReply(429, "TooManyRequestsException"), nil, resultBusy, 429},
		{"not hosted", errReply(503, "NoRunner"), nil, resultBusy, 503},
		{"stopped", errReply(503, "Stopped"), nil, resultBusy, 503},
		{"no responders", nil, nats.ErrNoResponders, resultBusy, 503},
		// No responders, explained by the router (clientsdk.RequestLambda).
		{"why: no runner", nil, clientsdk.Errorf(503, "NoRunner", "no runner"), resultBusy, 503},
		{"why: stopped", nil, clientsdk.Errorf(503, "Stopped", "stopped"), resultBusy, 503},
		{"why: cannot start", nil, clientsdk.Errorf(502, "Runtime.StartError", "cannot start"), resultFailed, 502},
		{"why: removed", nil, clientsdk.Errorf(404, "NotFound", "gone"), resultUnrunnable, 404},
		{"why: daemon", nil, clientsdk.Errorf(403, "NotALambda", "a daemon"), resultUnrunnable, 403},
		{"connection closed", nil, nats.ErrConnectionClosed, resultBusy, 503},
		{"no answer", nil, context.DeadlineExceeded, resultFailed, 504},
		{"nats timeout", nil, nats.ErrTimeout, resultFailed, 504},
		{"removed", errReply(404, "NotFound"), nil, resultUnrunnable, 404},
		{"daemon", errReply(403, "NotALambda"), nil, resultUnrunnable, 403},
		{"too large", errReply(413, "RequestEntityTooLargeException"), nil, resultUnrunnable, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, e := classifyAnswer("f", tc.msg, tc.err, time.Second)
			if r != tc.want {
				t.Fatalf("result %d, want %d", r, tc.want)
			}
			if (e == nil) != (tc.code == 0) || (e != nil && e.Code != tc.code) {
				t.Fatalf("error %v, want code %d", e, tc.code)
			}
		})
	}
}

func TestDecideAsync(t *testing.T) {
	two, zero := 2, 0
	spec := clientsdk.AsyncSpec{Retries: &two, MaxEventAge: clientsdk.Duration(time.Hour),
		RetryBackoff: []clientsdk.Duration{clientsdk.Duration(time.Second), clientsdk.Duration(10 * time.Second)}}
	none := spec
	none.Retries = &zero
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for _, tc := range []struct {
		name     string
		spec     clientsdk.AsyncSpec
		try      asyncTry
		r        asyncResult
		action   asyncAction
		delay    time.Duration
		attempts int
		reason   string
	}{
		{"success first time", spec, asyncTry{delivery: 1, now: at(time.Second)}, resultOK, actAck, 0, 1, ""},
		{"success on the retry", spec, asyncTry{delivery: 2, now: at(time.Second)}, resultOK, actAck, 0, 2, ""},
		{"first failure: first backoff", spec, asyncTry{delivery: 1, now: at(time.Second)}, resultFailed, actRetry, time.Second, 1, ""},
		{"second failure: second backoff", spec, asyncTry{delivery: 2, now: at(time.Minute)}, resultFailed, actRetry, 10 * time.Second, 2, ""},
		{"third failure: 1 + 2 attempts made", spec, asyncTry{delivery: 3, now: at(time.Minute)}, resultFailed, actDeadLetter, 0, 3, reasonRetries},
		{"no retries", none, asyncTry{delivery: 1, now: at(time.Second)}, resultFailed, actDeadLetter, 0, 1, reasonRetries},
		{"retry would start too late", spec, asyncTry{delivery: 2, now: at(time.Hour - 5*time.Second)}, resultFailed, actDeadLetter, 0, 2, reasonAge},
		{"busy: wait, not an attempt", spec, asyncTry{delivery: 1, waits: 0, now: at(time.Second)}, resultBusy, actWait, 50 * time.Millisecond, 0, ""},
		{"busy again: longer wait", spec, asyncTry{delivery: 2, waits: 3, now: at(time.Second)}, resultBusy, actWait, 400 * time.Millisecond, 1, ""},
		{"busy past the age", spec, asyncTry{delivery: 1, now: at(time.Hour + time.Second)}, resultBusy, actDeadLetter, 0, 0, reasonAge},
		{"unrunnable", spec, asyncTry{delivery: 1, now: at(time.Second)}, resultUnrunnable, actDeadLetter, 0, 0, reasonUnrunnable},
		{"unrunnable after a failure", spec, asyncTry{delivery: 2, now: at(time.Second)}, resultUnrunnable, actDeadLetter, 0, 1, reasonUnrunnable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.try.enqueued = t0
			d := decideAsync(tc.spec, tc.try, tc.r)
			if d.action != tc.action || d.delay != tc.delay || d.attempts != tc.attempts || d.reason != tc.reason {
				t.Fatalf("decision %+v, want action %d delay %s attempts %d reason %q", d, tc.action, tc.delay, tc.attempts, tc.reason)
			}
		})
	}
	if !expired(spec, t0, at(time.Hour+time.Nanosecond)) || expired(spec, t0, at(time.Hour)) {
		t.Fatal("expired: the age limit is inclusive")
	}
	if expired(clientsdk.AsyncSpec{}, t0, at(5*time.Hour)) || !expired(clientsdk.AsyncSpec{}, t0, at(7*time.Hour)) {
		t.Fatal("expired: the default age is 6h")
	}
	for n, want := range map[int]time.Duration{0: 50 * time.Millisecond, 1: 100 * time.Millisecond, 4: 800 * time.Millisecond,
		5: 1600 * time.Millisecond, 6: 2 * time.Second, 1000: 2 * time.Second} {
		if got := busyWait(n); got != want {
			t.Errorf("busyWait(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestAsyncConsumerConfig(t *testing.T) {
	spec := clientsdk.AppSpec{Name: "f", Kind: clientsdk.KindLambda,
		Lambda: &clientsdk.LambdaSpec{Timeout: clientsdk.Duration(3 * time.Second), MaxWorkers: 4}}
	c := asyncConsumerConfig(spec)
	if c.Durable != "dartup-async-f" || c.FilterSubject != "dartup.async.f" || c.AckPolicy != jetstream.AckExplicitPolicy ||
		c.MaxDeliver != -1 || c.MaxAckPending != asyncMaxAckPending {
		t.Fatalf("config %+v", c)
	}
	if c.AckWait < 2*3*time.Second+invokeSlack {
		t.Fatalf("AckWait %s is shorter than the longest wait for an answer", c.AckWait)
	}
	for _, tc := range []struct{ workers, nodes, servers, want int }{
		{1, 1, 1, 2}, {4, 1, 1, 8}, {4, 0, 1, 8}, {4, 3, 1, 24}, {4, 3, 3, 8}, {4, 1, 3, 3}, {1, 1, 3, 2},
		{32, 1, 1, 64}, {1000, 1, 1, asyncMaxConcurrency},
	} {
		if got := asyncConcurrency(clientsdk.LambdaSpec{MaxWorkers: tc.workers}, tc.nodes, tc.servers); got != tc.want {
			t.Errorf("asyncConcurrency(%d workers, %d nodes, %d servers) = %d, want %d", tc.workers, tc.nodes, tc.servers, got, tc.want)
		}
	}
	hosting := hostingNodes(map[string]clientsdk.Node{"a": {LambdaNames: []string{"f", "g"}}, "b": {LambdaNames: []string{"f"}}, "c": {}})
	if hosting["f"] != 2 || hosting["g"] != 1 || hosting["h"] != 0 {
		t.Errorf("hostingNodes = %v", hosting)
	}
}

func TestReadAsyncEvent(t *testing.T) {
	stored := time.Date(2026, 3, 1, 10, 0, 0, 600_000_000, time.UTC)
	h := nats.Header{}
	h.Set(clientsdk.HeaderRequestID, "order-7")
	ev := readAsyncEvent("f", h, []byte(`{"a":1}`), 12, stored, 2)
	if ev.id != "order-7" || ev.seq != 12 || ev.delivery != 2 || string(ev.body) != `{"a":1}` || !ev.enqueued.Equal(stored) {
		t.Fatalf("event %+v", ev)
	}
	// Without a valid id: derived from the place in the stream, the same
	// on every delivery.
	bad := nats.Header{clientsdk.HeaderRequestID: []string{"a/b"}}
	a, b := readAsyncEvent("f", bad, nil, 12, stored, 1), readAsyncEvent("f", nats.Header{}, nil, 12, stored, 3)
	c := readAsyncEvent("f", nats.Header{}, nil, 13, stored, 1)
	if a.id != b.id || a.id == c.id || !clientsdk.ValidRequestID(a.id) {
		t.Fatalf("derived ids %q %q %q", a.id, b.id, c.id)
	}
	// A schedule's tick gets its time and id.
	tick := nats.Header{headerScheduler: []string{"dartup.schedules.f.0"}}
	for _, body := range []string{
		`{"version":"0","id":"","detail-type":"Scheduled Event","source":"dartup.scheduler","time":"0001-01-01T00:00:00Z","resources":["f"],"detail":{"schedule":"@every 2s"}}`,
		`{"version":"0","detail-type":"Scheduled Event","time":"","detail":{"schedule":"@every 2s"}}`,
	} {
		ev := readAsyncEvent("f", tick, []byte(body), 5, stored, 1)
		var se clientsdk.ScheduledEvent
		if err := json.Unmarshal(ev.body, &se); err != nil {
			t.Fatal(err)
		}
		if se.ID != ev.id || !se.Time.Equal(time.Date(2026, 3, 1, 10, 0, 1, 0, time.UTC)) || se.Detail.Schedule != "@every 2s" || se.DetailType != "Scheduled Event" {
			t.Fatalf("filled tick %s", ev.body)
		}
	}
	// A tick that has them keeps them; a body that is not an object is
	// left alone.
	keep := `{"id":"x","time":"2026-01-01T00:00:00Z"}`
	if got := string(fillScheduledEvent([]byte(keep), stored, "y")); !strings.Contains(got, `"id":"x"`) || !strings.Contains(got, `"2026-01-01T00:00:00Z"`) {
		t.Fatalf("filled %s", got)
	}
	if got := string(fillScheduledEvent([]byte(`[1]`), stored, "y")); got != `[1]` {
		t.Fatalf("filled %s", got)
	}
}

func TestDeadLetterAndOutcomeMessages(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ev := asyncEvent{name: "f", seq: 9, id: "req-1", enqueued: t0, delivery: 3, body: []byte(`{"x":1}`)}
	e := clientsdk.Errorf(500, "Boom\r\nX-Injected: 1", "%s", "line one\nline two"+strings.Repeat("y", 2*maxHeaderError))
	m := deadLetterMsg(ev, asyncFailure{attempts: 3, err: e, first: t0.Add(time.Second), last: t0.Add(time.Minute)})
	h := m.Header
	if m.Subject != "dartup.dlq.f" || string(m.Data) != `{"x":1}` || h.Get(clientsdk.HeaderRequestID) != "req-1" ||
		h.Get(clientsdk.HeaderAttempts) != "3" || h.Get(clientsdk.HeaderErrorCode) != "500" || h.Get(jetstream.MsgIDHeader) != "req-1.9" ||
		h.Get(clientsdk.HeaderFirstAttempt) != "2026-03-01T10:00:01Z" || h.Get(clientsdk.HeaderLastAttempt) != "2026-03-01T10:01:00Z" ||
		h.Get(clientsdk.HeaderEnqueued) != "2026-03-01T10:00:00Z" {
		t.Fatalf("dead letter %s %v", m.Subject, h)
	}
	if v := h.Get(clientsdk.HeaderError); strings.ContainsAny(v, "\r\n") || len(v) > maxHeaderError+4 || !strings.HasPrefix(v, "line one line two") {
		t.Fatalf("error header %q", v)
	}
	if strings.ContainsAny(h.Get(clientsdk.HeaderErrorType), "\r\n") {
		t.Fatal("the error type kept a line break")
	}
	if m := deadLetterMsg(ev, asyncFailure{}); m.Header.Get(clientsdk.HeaderFirstAttempt) != "" || m.Header.Get(clientsdk.HeaderError) != "" {
		t.Fatalf("unknown times and no error: %v", m.Header)
	}

	var o clientsdk.AsyncOutcome
	ok := outcomeMsg("orders.done", ev, asyncDecision{action: actAck, attempts: 2}, []byte("plain text"), nil)
	if err := json.Unmarshal(ok.Data, &o); err != nil {
		t.Fatal(err)
	}
	if ok.Subject != "orders.done" || !o.Success || o.Attempts != 2 || string(o.Result) != `"plain text"` || string(o.Event) != `{"x":1}` ||
		o.Error != nil || o.RequestID != "req-1" || ok.Header.Get(jetstream.MsgIDHeader) != "" {
		t.Fatalf("success outcome %s %v", ok.Data, ok.Header)
	}
	bad := outcomeMsg("dartup.async.g", ev, asyncDecision{action: actDeadLetter, attempts: 3}, nil, e)
	o = clientsdk.AsyncOutcome{}
	if err := json.Unmarshal(bad.Data, &o); err != nil {
		t.Fatal(err)
	}
	id := bad.Header.Get(clientsdk.HeaderRequestID)
	if o.Success || o.Error == nil || o.Error.Code != 500 || o.Result != nil || id == "req-1" || !clientsdk.ValidRequestID(id) ||
		bad.Header.Get(jetstream.MsgIDHeader) != id || id != outcomeMsg("dartup.async.g", ev, asyncDecision{}, nil, e).Header.Get(clientsdk.HeaderRequestID) {
		t.Fatalf("failure outcome to another lambda %+v %v", o.Success, bad.Header)
	}
}

// Lambdas whose destinations call each other stop after MaxAsyncHops: each
// outcome to another lambda's async subject carries one more hop.
func TestAsyncDestinationChainStops(t *testing.T) {
	ev := readAsyncEvent("a", nats.Header{}, []byte(`{}`), 1, time.Now(), 1)
	for hop := 1; hop <= clientsdk.MaxAsyncHops; hop++ {
		if chainTooLong("dartup.async.b", ev) {
			t.Fatalf("hop %d stopped; the limit is %d", hop, clientsdk.MaxAsyncHops)
		}
		m := outcomeMsg("dartup.async.b", ev, asyncDecision{action: actAck}, []byte(`{}`), nil)
		if got := m.Header.Get(clientsdk.HeaderHops); got != strconv.Itoa(hop) {
			t.Fatalf("hop %d: header %q", hop, got)
		}
		ev = readAsyncEvent("b", m.Header, m.Data, uint64(hop+1), time.Now(), 1)
	}
	if !chainTooLong("dartup.async.a", ev) {
		t.Errorf("hop %d was not stopped", clientsdk.MaxAsyncHops+1)
	}
	if chainTooLong("orders.done", ev) {
		t.Error("an outcome to a plain subject was stopped: it starts no chain")
	}
	bogus := readAsyncEvent("a", nats.Header{clientsdk.HeaderHops: {"99999999999999999999"}}, nil, 1, time.Now(), 1)
	if bogus.hops != 0 {
		t.Errorf("an unreadable hops header gave %d", bogus.hops)
	}
}
