package app

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// A direct worker whose ServeLambda returns on an error (here a
// permissions violation) while it holds the record of a request it
// answered leaves that record in its in-flight file, for dartup to count
// when the process exits: its hold timer, firing after ServeLambda closed
// the connection, must not empty the file for a notice that cannot be
// sent.
func TestDirectHeldRecordOutlivesServeLambdaError(t *testing.T) {
	oldTook, oldHold := tookAfter, holdFor
	tookAfter, holdFor = time.Minute, 100*time.Millisecond
	t.Cleanup(func() { tookAfter, holdFor = oldTook, oldHold })
	path := emptyInflightFile(t)
	b := testutil.StartBroker(t)
	worker, caller := testutil.Connect(t, b.NATSURL()), testutil.Connect(t, b.NATSURL())
	notices := make(chan *nats.Msg, 16)
	if _, err := caller.ChanSubscribe("test.control", notices); err != nil {
		t.Fatal(err)
	}
	if err := caller.Flush(); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		done <- serveLambda(context.Background(), worker, "test.worker", "test.control",
			func(context.Context, []byte) ([]byte, error) { return []byte("ok"), nil }, errs,
			&directConf{group: "g", lambda: "lambda.hold", timeout: time.Minute})
	}()
	select {
	case <-notices: // ready
	case <-time.After(10 * time.Second):
		t.Fatal("no ready notice")
	}
	if _, err := caller.Request("lambda.hold", []byte("x"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	errs <- errors.New("a permissions violation")
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("serveLambda returned nil on an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveLambda did not return on an error")
	}
	worker.Close() // as ServeLambda does before it returns
	time.Sleep(3 * holdFor)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	held, _, err := clientsdk.ParseInflight(got)
	if err != nil || len(held) != 1 {
		t.Fatalf("in-flight file %q after the worker left: %d records held (err %v), want the one not sent", got, len(held), err)
	}
	select {
	case m := <-notices:
		t.Fatalf("a notice after the worker left, yet the record is still in its file: %q %q", m.Header, m.Data)
	default:
	}
}
