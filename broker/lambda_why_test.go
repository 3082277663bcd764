package broker_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// Any client may ask dartup.lambda.why.NAME about any name, and a name the
// router's watch cache does not hold costs a read of the apps bucket (it
// may have been pushed a moment ago). Those reads are bounded per second:
// a flood of made-up names is answered from the cache past the budget (503
// LookupThrottled: try again), and a real question asked behind it still
// gets its own answer.
func TestWhyLookupsAreBounded(t *testing.T) {
	r := newLambdaRig(t)
	r.put("daemon", clientsdk.KindDaemon, nil)
	gets, err := r.nc.SubscribeSync("$JS.API.DIRECT.GET.KV_" + clientsdk.AppsBucket + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.nc.Request(clientsdk.LambdaWhySubject("made-up"), nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := gets.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("an unknown name was not looked up in the bucket: %v", err)
	}
	const flood = 2000
	answers, err := r.nc.SubscribeSync(nats.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range flood {
		if err := r.nc.PublishRequest(clientsdk.LambdaWhySubject(fmt.Sprintf("made-up-%d", i)), answers.Subject, nil); err != nil {
			t.Fatal(err)
		}
	}
	m, err := r.nc.Request(clientsdk.LambdaWhySubject("daemon"), nil, 10*time.Second)
	if e := clientsdk.ErrorFromMsg(m); err != nil || e == nil || e.Code != 403 {
		t.Fatalf("why of a daemon behind a flood: %v %v", err, e)
	}
	for i := range flood {
		m, err := answers.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i, flood, err)
		}
		if e := clientsdk.ErrorFromMsg(m); e == nil || e.Code != 404 && e.Type != "LookupThrottled" {
			t.Fatalf("a made-up name: %v", e)
		}
	}
	elapsed := time.Since(start)
	lookups := 0
	for {
		if _, err := gets.NextMsg(200 * time.Millisecond); errors.Is(err, nats.ErrTimeout) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		lookups++
	}
	// the burst, plus the rate over the time the flood took
	if most := 100 + int(200*elapsed.Seconds()) + 10; lookups > most || lookups >= flood/2 {
		t.Fatalf("%d made-up names cost %d bucket reads in %s, want at most %d", flood, lookups, elapsed, most)
	}
}

// Past the budget of bucket reads, a name the cache does not hold is not
// known to be missing: it may be a lambda pushed on another server a
// moment ago. The why question and the gateway answer 503 (try again), not
// the 404 that callers take as final (the async dispatcher dead-letters
// the event at once); a worker token of such an app, which only a runner
// can mint, is still checked against the bucket.
func TestLookupsPastTheBudgetAreNotFinal(t *testing.T) {
	b := testutil.StartBroker(t, func(c *broker.Config) { c.RequirePassword = true })
	if err := broker.SetPassword(filepath.Join(b.DataDir(), broker.PasswordFileName), "admin", "pw"); err != nil {
		t.Fatal(err)
	}
	r := newLambdaRigOn(t, b, nats.UserInfo("admin", "pw"))
	r.put("late", clientsdk.KindLambda, nil)
	token := tokenFor(t, r.nc, "late-daemon")
	for _, name := range []string{"late", "late-daemon"} {
		testutil.WaitFor(t, 5*time.Second, "the router to cache "+name, func() bool { return b.ForgetCachedApp(name) })
	}
	b.StopLookups()
	m, err := r.nc.Request(clientsdk.LambdaWhySubject("late"), nil, 5*time.Second)
	if e := clientsdk.ErrorFromMsg(m); err != nil || e == nil || e.Code != 503 {
		t.Fatalf("why of a lambda the cache does not hold yet, past the budget: %v %v; want 503", err, e)
	}
	if code, _, _ := httpGet(t, b.HTTPURL()+"/late", "admin", "pw"); code != 503 {
		t.Fatalf("the gateway, for that lambda: %d; want 503", code)
	}
	if err := natsConnect(b.NATSURL(), nats.Token(token)); err != nil {
		t.Fatalf("a worker token of an app the cache does not hold yet, past the budget: %v", err)
	}
}
