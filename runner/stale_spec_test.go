package runner_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// storeRaw writes spec into the apps bucket as is, past the push verb's
// checks: what an older dartup (or `nats kv put`) may have stored.
func (e *env) storeRaw(spec clientsdk.AppSpec) {
	e.t.Helper()
	js, err := jetstream.New(e.c.Conn())
	if err != nil {
		e.t.Fatal(err)
	}
	apps, err := js.KeyValue(context.Background(), clientsdk.AppsBucket)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(spec)
	if _, err := apps.Put(context.Background(), spec.Name, b); err != nil {
		e.t.Fatal(err)
	}
}

// TestStoredSpecThatCannotRun: specs an older dartup accepted, which no
// clamping repairs, get instances in state errored with a reason that names
// the field and says to push again (not an exec failure, nor a garbage PORT).
func TestStoredSpecThatCannotRun(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name   string
		change func(*clientsdk.AppSpec)
		want   string
	}{
		{"nulenv", func(s *clientsdk.AppSpec) { s.Env["A"] = "a\x00b" }, `env["A"]`},
		{"bigarg", func(s *clientsdk.AppSpec) { s.Args = []string{strings.Repeat("a", 200<<10)} }, "args[0]"},
		// port + instances overflowed the old check: PORT would be negative.
		{"wrapport", func(s *clientsdk.AppSpec) { s.Port, s.Instances = 1<<63-2, 3 }, "port"},
	}
	for _, c := range cases {
		s := clientsdk.AppSpec{Name: c.name, Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand,
			Command: []string{e.worker}, Env: map[string]string{"WORKER_MODE": "run"}}
		c.change(&s)
		e.storeRaw(s)
	}
	for _, c := range cases {
		st := e.waitState(c.name, 0, clientsdk.StateErrored, 10*time.Second)
		if !strings.Contains(st.LastError, c.want) || !strings.Contains(st.LastError, "push the app again") {
			t.Errorf("%s: errored with %q; want the reason naming %s and saying to push again", c.name, st.LastError, c.want)
		}
	}
}

// TestStoredSpecHugeInstances: a stored spec with 2^40 instances (that no
// node may run) does not wedge the runner's reconcile loop: an app pushed
// after it starts.
func TestStoredSpecHugeInstances(t *testing.T) {
	e := newEnv(t)
	e.storeRaw(clientsdk.AppSpec{Name: "huge", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand,
		Command: []string{e.worker}, Instances: 1 << 40, Constraints: map[string]string{"zone": "nowhere"}})
	e.push("after", "run", nil)
	e.waitState("after", 0, clientsdk.StateRunning, 15*time.Second)
}
