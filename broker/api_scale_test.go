package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// startWithClient starts a broker (with opts) and a client of it.
func startWithClient(t *testing.T, opts ...func(*broker.Config)) (*broker.Broker, *clientsdk.Client) {
	t.Helper()
	b := testutil.StartBroker(t, opts...)
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return b, c
}

// pushCommand stores a spec of runtime command (no artifact) through the
// push verb, edited by edit, and returns it as stored.
func pushCommand(t *testing.T, c *clientsdk.Client, name string, edit func(*clientsdk.AppSpec)) *clientsdk.AppSpec {
	t.Helper()
	spec := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/sleep", "600"}}
	if edit != nil {
		edit(&spec)
	}
	s, err := c.Push(context.Background(), spec, "", nil)
	if err != nil {
		t.Fatalf("push %s: %v", name, err)
	}
	return s
}

// TestScaleVerb: scale refuses lambdas, numbers out of range and unknown
// apps with what to do; it changes the number of instances of a daemon in
// a new revision of its spec, keeping its version, service, history and
// stopped state, records an event, and writes nothing for the same number.
func TestScaleVerb(t *testing.T) {
	t.Parallel()
	b, c := startWithClient(t)
	ctx := context.Background()
	web := pushCommand(t, c, "web", func(s *clientsdk.AppSpec) { s.Service = "shop"; s.History = 4 })
	pushCommand(t, c, "fixed", func(s *clientsdk.AppSpec) { s.Port = clientsdk.MaxPort - 1 })
	pushCommand(t, c, "fn", func(s *clientsdk.AppSpec) {
		s.Kind, s.Lambda = clientsdk.KindLambda, &clientsdk.LambdaSpec{Protocol: clientsdk.ProtocolStdio}
	})

	for _, tc := range []struct {
		name, body string
		code       int
		typ, says  string
	}{
		{"lambda", `{"name":"fn","instances":2}`, 400, "NotADaemon", "is a lambda"},
		{"zero", `{"name":"web","instances":0}`, 400, clientsdk.TypeInvalidSpec, "instances (--instances) is 0; allowed 1 to 1024"},
		{"negative", `{"name":"web","instances":-3}`, 400, clientsdk.TypeInvalidSpec, "allowed 1 to 1024"},
		{"too many", `{"name":"web","instances":1025}`, 400, clientsdk.TypeInvalidSpec, "allowed 1 to 1024"},
		{"ports run out", `{"name":"fixed","instances":3}`, 400, clientsdk.TypeInvalidSpec, "port + instances - 1 up to 65535"},
		{"unknown app", `{"name":"nope","instances":2}`, 404, "NotFound", `no app named "nope"`},
		{"bad name", `{"name":"../x","instances":2}`, 400, "InvalidName", "use letters, digits"},
		{"unknown field", `{"name":"web","instances":2,"force":true}`, 400, "BadRequest", "unknown field"},
		{"not a number", `{"name":"web","instances":"2"}`, 400, "BadRequest", "not valid JSON"},
		{"empty", ``, 400, "BadRequest", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := c.Conn().Request(clientsdk.APISubject(clientsdk.VerbScale), []byte(tc.body), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			e := clientsdk.ErrorFromMsg(m)
			if e == nil || e.Code != tc.code || e.Type != tc.typ || !strings.Contains(e.Message, tc.says) {
				t.Fatalf("scale %s = %v (%s); want %d %s saying %q", tc.body, e, m.Data, tc.code, tc.typ, tc.says)
			}
		})
	}
	// The client refuses a number out of range before asking.
	if _, err := c.Scale(ctx, "web", 0); !errors.Is(err, clientsdk.ErrBadRequest) {
		t.Errorf("Scale(web, 0) = %v; want a 400", err)
	}

	if _, err := c.Kill(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	before := describe(t, c, "web")
	got, err := c.Scale(ctx, "web", 3)
	if err != nil {
		t.Fatal(err)
	}
	after := describe(t, c, "web")
	s := after.Spec
	if got.Instances != 3 || s.Instances != 3 || s.Revision <= before.Spec.Revision || got.Revision != s.Revision {
		t.Fatalf("after scale to 3: answered %d instances at revision %d, stored %d at %d (before: %d)", got.Instances, got.Revision, s.Instances, s.Revision, before.Spec.Revision)
	}
	if s.Version != web.Version || s.Service != "shop" || s.History != 4 || !s.Stopped || !s.RestartedAt.Equal(before.Spec.RestartedAt) {
		t.Errorf("scale changed more than the instances: version %d (was %d), service %q, history %d, stopped %v", s.Version, web.Version, s.Service, s.History, s.Stopped)
	}
	if !hasEvent(after.Events, clientsdk.EventScaled, "scaled from 1 to 3 instances") {
		t.Errorf("no scaled event in %+v", after.Events)
	}
	if _, err := c.Scale(ctx, "web", 3); err != nil {
		t.Fatal(err)
	}
	if again := describe(t, c, "web"); again.Spec.Revision != s.Revision {
		t.Errorf("scaling to the same number wrote revision %d (was %d)", again.Spec.Revision, s.Revision)
	}
	// The versions kept are untouched: scale is not a version.
	if len(after.Versions) != len(before.Versions) {
		t.Errorf("versions kept went from %d to %d", len(before.Versions), len(after.Versions))
	}
	assertScaleDoesNotRace(t, c, b.NATSURL())
}

// assertScaleDoesNotRace scales one app from several callers at once:
// each call is answered, and the number stored is one of theirs.
func assertScaleDoesNotRace(t *testing.T, c *clientsdk.Client, url string) {
	t.Helper()
	pushCommand(t, c, "busy", nil)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := c.Scale(context.Background(), "busy", i+2)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil && !errors.Is(err, clientsdk.ErrConflict) {
			t.Errorf("concurrent scale: %v", err)
		}
	}
	nc := testutil.Connect(t, url)
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), clientsdk.AppsBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	var s clientsdk.AppSpec
	if err := json.Unmarshal(e.Value(), &s); err != nil || s.Instances < 2 || s.Instances > 9 {
		t.Errorf("after concurrent scales the spec has %d instances (%v); want one of 2..9", s.Instances, err)
	}
}

func describe(t *testing.T, c *clientsdk.Client, name string) *clientsdk.AppInfo {
	t.Helper()
	info, err := c.Describe(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func hasEvent(events []clientsdk.Event, kind clientsdk.EventKind, msg string) bool {
	for _, e := range events {
		if e.Kind == kind && e.Message == msg {
			return true
		}
	}
	return false
}
