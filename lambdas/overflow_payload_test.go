package lambdas_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// A request that fits the server's payload limit only just, with large
// headers of its caller's, does not fit it once passed on (dartup adds its
// request id, trace and hop count): the caller of a full node gets the 429
// it would have got, not a 504 "timed out" for a request that never left.
func TestOverflowTooLargeToPassOnIsThrottled(t *testing.T) {
	r := newRig(t)
	r.deployNative("tight", func(l *clientsdk.LambdaSpec) { l.MaxWorkers = 1; l.Queue = 1 })
	r.mustInvoke("tight", "warm")
	fakeDirectHost(t, r, "tight")
	// Another member, so that the request is not answered "no responders".
	other, err := r.client.Subscribe(clientsdk.LambdaSubject("tight"), func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Unsubscribe() }()
	slow := r.sendInOrder("tight", 2, `{"sleep_ms":1000}`) // running, queued
	m := nats.NewMsg(clientsdk.LambdaSubject("tight"))
	m.Data = []byte(`"x"`)
	m.Header.Set("X-Pad", strings.Repeat("p", int(r.client.MaxPayload())-len(m.Data)-60))
	resp, err := r.client.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := clientsdk.ErrorFromMsg(resp); e == nil || e.Code != 429 || !strings.Contains(e.Message, "too large to pass on") {
		t.Fatalf("%q %+v: want 429", resp.Data, e)
	}
	for range 2 {
		if _, err := slow.NextMsg(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
}
