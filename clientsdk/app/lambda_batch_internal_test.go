package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// batchRig runs a direct worker (serveLambda) on a real server: its first
// request, "first", waits for gate; the test sees its notices.
type batchRig struct {
	t       *testing.T
	worker  *nats.Conn // the worker's connection
	caller  *nats.Conn
	notices chan *nats.Msg
	gate    chan struct{}
	replies chan *nats.Msg
	// stop cancels the worker's context and waits for it to return.
	stop func()
}

func newBatchRig(t *testing.T, backlog int) *batchRig {
	return newBatchRigHolding(t, backlog, 500*time.Millisecond) // what runs back to back goes in one batch
}

// newBatchRigHolding is newBatchRig with the worker holding done records
// for hold.
func newBatchRigHolding(t *testing.T, backlog int, hold time.Duration) *batchRig {
	oldTook, oldHold := tookAfter, holdFor
	tookAfter = time.Minute // "first" waits for the test, without a took notice
	holdFor = hold
	t.Cleanup(func() { tookAfter, holdFor = oldTook, oldHold })
	b := testutil.StartBroker(t)
	r := &batchRig{t: t, worker: testutil.Connect(t, b.NATSURL()), caller: testutil.Connect(t, b.NATSURL()),
		notices: make(chan *nats.Msg, 64), gate: make(chan struct{}), replies: make(chan *nats.Msg, 64)}
	ctl := testutil.Connect(t, b.NATSURL())
	if _, err := ctl.ChanSubscribe("test.control", r.notices); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Flush(); err != nil {
		t.Fatal(err)
	}
	h := func(_ context.Context, ev []byte) ([]byte, error) {
		if string(ev) == "first" {
			<-r.gate
		}
		return ev, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveLambda(ctx, r.worker, "test.worker", "test.control", h, nil,
			&directConf{group: "g", lambda: "lambda.batch", timeout: time.Minute, backlog: backlog})
	}()
	var once sync.Once
	r.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(r.stop)
	if n := r.notice(); n.Header.Get(clientsdk.HeaderNotice) != clientsdk.NoticeReady {
		t.Fatalf("first notice %v, want ready", n.Header)
	}
	return r
}

// send publishes requests with r's reply inbox.
func (r *batchRig) send(events ...string) {
	inbox := nats.NewInbox()
	if _, err := r.caller.ChanSubscribe(inbox+".*", r.replies); err != nil {
		r.t.Fatal(err)
	}
	for i, ev := range events {
		if err := r.caller.PublishRequest("lambda.batch", inbox+"."+string(rune('a'+i)), []byte(ev)); err != nil {
			r.t.Fatal(err)
		}
	}
}

// delivered returns once the worker's connection holds what the server
// sent it so far: the server answers its PING after them.
func (r *batchRig) delivered() {
	if err := r.caller.Flush(); err != nil {
		r.t.Fatal(err)
	}
	if err := r.worker.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// answered waits for n answers.
func (r *batchRig) answered(n int) {
	for range n {
		select {
		case <-r.replies:
		case <-time.After(10 * time.Second):
			r.t.Fatal("a request was not answered")
		}
	}
}

func (r *batchRig) notice() *nats.Msg {
	select {
	case m := <-r.notices:
		return m
	case <-time.After(10 * time.Second):
		r.t.Fatal("no notice within 10 s")
		return nil
	}
}

// kind is a notice's kind: its header, or "batch N" for a batched done
// notice of N records.
func (r *batchRig) kind(m *nats.Msg) string {
	if m.Header == nil && clientsdk.IsDoneBatch(m.Data) {
		recs, err := clientsdk.ParseDoneBatch(m.Data)
		if err != nil {
			r.t.Fatalf("batch %q: %v", m.Data, err)
		}
		return "batch " + string(rune('0'+len(recs)))
	}
	return m.Header.Get(clientsdk.HeaderNotice)
}

// records is the number of records in batched done notice m, 0 for
// another notice.
func (r *batchRig) records(m *nats.Msg) int {
	if m.Header != nil || !clientsdk.IsDoneBatch(m.Data) {
		return 0
	}
	recs, err := clientsdk.ParseDoneBatch(m.Data)
	if err != nil {
		r.t.Fatalf("batch %q: %v", m.Data, err)
	}
	return len(recs)
}

// A caller that sends one request at a time, to a lambda with room for
// more workers (no share of the queue), costs dartup one done notice per
// MaxDoneBatch requests, not one each: the worker holds the records
// (holdFor, here longer than the test) and sends them when MaxDoneBatch
// are held, and the rest as it leaves.
func TestDirectHoldsRecordsOfOneRequestAtATime(t *testing.T) {
	r := newBatchRigHolding(t, 0, time.Hour) // no share: the lambda has room for more workers
	n := clientsdk.MaxDoneBatch + 6
	for range n {
		r.send("one")
		r.answered(1)
	}
	m := r.notice()
	if got := r.records(m); got != clientsdk.MaxDoneBatch {
		t.Fatalf("first notice %q with %d records, want a batch of %d", r.kind(m), got, clientsdk.MaxDoneBatch)
	}
	select {
	case m := <-r.notices:
		t.Fatalf("another notice before the worker left: %q", r.kind(m))
	default:
	}
	r.stop()
	if got := r.records(r.notice()); got != n-clientsdk.MaxDoneBatch {
		t.Fatalf("the worker left with %d records sent, want %d", got, n-clientsdk.MaxDoneBatch)
	}
}

// Records held while no request comes are sent holdFor after the first.
func TestDirectSendsHeldRecordsWhenIdle(t *testing.T) {
	r := newBatchRigHolding(t, 0, 20*time.Millisecond)
	for range 5 {
		r.send("one")
		r.answered(1)
	}
	for got := 0; got < 5; {
		m := r.notice()
		k := r.records(m)
		if k == 0 {
			t.Fatalf("notice %q, want batched records", r.kind(m))
		}
		got += k
	}
}

// A direct worker that finds requests waiting (within its share) runs them
// back to back and sends their records in one notice.
func TestDirectBatchesDoneRecords(t *testing.T) {
	r := newBatchRig(t, 16)
	r.send("first")
	r.delivered()
	r.send("2", "3", "4", "5", "6")
	r.delivered()
	close(r.gate)
	if k := r.kind(r.notice()); k != "batch 6" {
		t.Fatalf("notice %q, want one batch of 6 records", k)
	}
	r.answered(6)
	select {
	case m := <-r.notices:
		t.Fatalf("another notice: %q", r.kind(m))
	default:
	}
}

// More waiting than its share: the worker gives up its subscription and
// sends took notices (the records it held first) until no more than its
// share wait, then batches again.
func TestDirectBatchPastTheShare(t *testing.T) {
	r := newBatchRig(t, 2)
	r.send("first")
	r.delivered()
	r.send("2", "3", "4", "5", "6")
	r.delivered()
	close(r.gate)
	var got []string
	for range 6 {
		got = append(got, r.kind(r.notice()))
	}
	if want := "batch 1,took,done,took,done,batch 3"; strings.Join(got, ",") != want {
		t.Fatalf("notices %v, want %s", got, want)
	}
	r.answered(6)
}

// emptyInflightFile makes an empty in-flight file, as dartup does for a
// direct worker, and names it in the environment (EnvLambdaInflight).
func emptyInflightFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "request")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(clientsdk.EnvLambdaInflight, path)
	return path
}
