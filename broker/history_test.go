package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// historyEnv is a broker, a client and the buckets a history test looks into.
type historyEnv struct {
	t       *testing.T
	b       *broker.Broker
	c       *clientsdk.Client
	revs    jetstream.KeyValue
	apps    jetstream.KeyValue
	objects jetstream.ObjectStore
	dir     string
}

func newHistoryEnv(t *testing.T) *historyEnv {
	t.Helper()
	b := testutil.StartBroker(t)
	ctx := context.Background()
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	e := &historyEnv{t: t, b: b, c: c, dir: t.TempDir()}
	if e.revs, err = js.KeyValue(ctx, clientsdk.RevisionsBucket); err != nil {
		t.Fatal(err)
	}
	if e.apps, err = js.KeyValue(ctx, clientsdk.AppsBucket); err != nil {
		t.Fatal(err)
	}
	if e.objects, err = js.ObjectStore(ctx, clientsdk.ArtifactsBucket); err != nil {
		t.Fatal(err)
	}
	return e
}

// push pushes app with an executable file of its own bytes (content) and
// env A=a, and returns the stored spec.
func (e *historyEnv) push(app, content, a string, edit ...func(*clientsdk.AppSpec)) *clientsdk.AppSpec {
	e.t.Helper()
	file := filepath.Join(e.dir, app+"-"+content)
	if err := os.WriteFile(file, append([]byte("\x7fELF"), content...), 0o755); err != nil {
		e.t.Fatal(err)
	}
	spec := clientsdk.AppSpec{Name: app, Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeExe, Env: map[string]string{"A": a}}
	for _, f := range edit {
		f(&spec)
	}
	s, err := e.c.Push(context.Background(), spec, file, nil)
	if err != nil {
		e.t.Fatalf("push %s %s: %v", app, content, err)
	}
	return s
}

// revisionKeys returns the versions stored for app in the revisions bucket.
func (e *historyEnv) revisionKeys(app string) []uint64 {
	e.t.Helper()
	var out []uint64
	keys, err := e.revs.ListKeysFiltered(context.Background(), app+".*")
	if err != nil {
		e.t.Fatal(err)
	}
	for k := range keys.Keys() {
		_, v, _ := clientsdk.ParseRevisionKey(k)
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func (e *historyEnv) stored(object string) bool {
	_, err := e.objects.GetInfo(context.Background(), object)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

func (e *historyEnv) history(app string) *clientsdk.HistoryResponse {
	e.t.Helper()
	h, err := e.c.History(context.Background(), app)
	if err != nil {
		e.t.Fatalf("history %s: %v", app, err)
	}
	return h
}

func versionsOf(h *clientsdk.HistoryResponse) []uint64 {
	var out []uint64
	for _, v := range h.Versions {
		out = append(out, v.Version)
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

// TestHistoryKeepsTheLastVersions: 12 pushes with history 10 keep exactly
// versions 3 to 12 in the record, with their artifacts, even through a
// collection of orphans; the artifacts of versions 1 and 2 are gone. The
// history lists what changed from one version to the next; remove takes
// the record and the artifacts with it.
func TestHistoryKeepsTheLastVersions(t *testing.T) {
	t.Parallel()
	e := newHistoryEnv(t)
	ctx := context.Background()
	objects := map[uint64]string{}
	for i := uint64(1); i <= 12; i++ {
		s := e.push("hist", fmt.Sprint("build ", i), fmt.Sprint(i/2), func(s *clientsdk.AppSpec) {
			s.Instances = int(i%3) + 1
		})
		if s.Version != i {
			t.Fatalf("push %d stored version %d", i, s.Version)
		}
		objects[i] = s.Artifact.Object
	}
	if got := e.revisionKeys("hist"); !slices.Equal(got, span(3, 12)) {
		t.Fatalf("revisions kept: %v, want 3 to 12", got)
	}
	if _, _, err := e.b.CollectOrphans(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for v, o := range objects {
		if e.stored(o) != (v >= 3) {
			t.Errorf("version %d's artifact stored: %v, want %v", v, e.stored(o), v >= 3)
		}
	}

	h := e.history("hist")
	if h.Current != 12 || h.Keep != clientsdk.DefaultHistory || !slices.Equal(versionsOf(h), []uint64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3}) {
		t.Fatalf("history: current %d, keep %d, versions %v", h.Current, h.Keep, versionsOf(h))
	}
	top, oldest := h.Versions[0], h.Versions[len(h.Versions)-1]
	if !top.Current || top.PushedBy == "" || top.PushedAt.IsZero() || top.SHA256 == "" || !oldest.Oldest || oldest.Changes != nil {
		t.Fatalf("history entries: newest %+v, oldest %+v", top, oldest)
	}
	// Version 12 changed the artifact, env A (11/2 → 12/2) and instances (3 → 1).
	var fields []string
	for _, c := range top.Changes {
		fields = append(fields, c.Field)
	}
	if !slices.Contains(fields, "artifact.sha256") || !slices.Contains(fields, "env.A") || !slices.Contains(fields, "instances") {
		t.Fatalf("changes of version 12: %v", top.Changes)
	}
	for _, c := range top.Changes {
		if c.Field == "env.A" && (strings.Contains(c.Old, "5") || strings.Contains(c.New, "6")) {
			t.Fatalf("history shows an env value: %+v", c)
		}
	}

	if err := e.c.Remove(ctx, "hist"); err != nil {
		t.Fatal(err)
	}
	if got := e.revisionKeys("hist"); len(got) != 0 {
		t.Fatalf("revisions left after remove: %v", got)
	}
	for v, o := range objects {
		if e.stored(o) {
			t.Errorf("version %d's artifact is still stored after remove", v)
		}
	}
}

// TestRollback: a rollback stores the old version's spec as a new version
// with rollback_of set and the caller as pusher, keeps a killed app killed,
// and refuses what it cannot do with a clear code.
func TestRollback(t *testing.T) {
	t.Parallel()
	e := newHistoryEnv(t)
	ctx := context.Background()
	v1 := e.push("rb", "one", "1")
	e.push("rb", "two", "2", func(s *clientsdk.AppSpec) { s.Instances = 3 })

	back, err := e.c.Rollback(ctx, "rb", 0)
	if err != nil {
		t.Fatal(err)
	}
	if back.Version != 3 || back.RollbackOf != 1 || back.PushedBy == "" || !back.PushedAt.After(v1.PushedAt) || back.Revision == 0 {
		t.Fatalf("rollback stored version %d, rollback_of %d, by %q at %s, revision %d", back.Version, back.RollbackOf, back.PushedBy, back.PushedAt, back.Revision)
	}
	if d := clientsdk.DiffSpecs(*v1, *back); len(d) != 0 {
		t.Fatalf("version 3 differs from version 1: %v", d)
	}
	info, err := e.c.Describe(ctx, "rb")
	if err != nil || info.Spec.Version != 3 || info.Spec.RollbackOf != 1 || info.Spec.Env["A"] != "1" {
		t.Fatalf("desired state after the rollback: %+v, %v", info.Spec, err)
	}
	h := e.history("rb")
	if !slices.Equal(versionsOf(h), []uint64{3, 2, 1}) || h.Versions[0].RollbackOf != 1 || !h.Versions[0].Current || len(h.Versions[0].Changes) == 0 {
		t.Fatalf("history after the rollback: %+v", h.Versions)
	}

	// 0 after a rollback goes to the version rolled back from; a killed app stays killed.
	if _, err := e.c.Kill(ctx, "rb"); err != nil {
		t.Fatal(err)
	}
	again, err := e.c.Rollback(ctx, "rb", 0)
	if err != nil || again.Version != 4 || again.RollbackOf != 2 || !again.Stopped || again.Instances != 3 {
		t.Fatalf("second rollback: %+v, %v; want version 4 of version 2, still stopped", again, err)
	}

	for _, tc := range []struct {
		name string
		app  string
		to   uint64
		code int
		say  string
	}{
		{"unknown app", "nosuchapp", 0, 404, "no app named"},
		{"bad name", "a.b", 0, 400, "app name"},
		{"the current version", "rb", 4, 409, "already runs version 4"},
		{"the same spec as the current one", "rb", 2, 409, "same as its current version 4"},
		{"a version that does not exist", "rb", 9, 400, "current version is 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.c.Rollback(ctx, tc.app, tc.to)
			ce, ok := clientsdk.AsError(err)
			if !ok || ce.Code != tc.code || !strings.Contains(ce.Message, tc.say) {
				t.Fatalf("rollback %s to %d: %v; want %d saying %q", tc.app, tc.to, err, tc.code, tc.say)
			}
		})
	}

	t.Run("a version that is not kept", func(t *testing.T) {
		e.push("rbkeep", "k1", "1", func(s *clientsdk.AppSpec) { s.History = 2 })
		e.push("rbkeep", "k2", "2", func(s *clientsdk.AppSpec) { s.History = 2 })
		e.push("rbkeep", "k3", "3", func(s *clientsdk.AppSpec) { s.History = 2 })
		_, err := e.c.Rollback(ctx, "rbkeep", 1)
		ce, ok := clientsdk.AsError(err)
		if !ok || ce.Code != 404 || !strings.Contains(ce.Message, "kept: 3, 2") {
			t.Fatalf("rollback to a dropped version: %v; want 404 naming the kept ones", err)
		}
	})
	t.Run("the number of versions kept stays", func(t *testing.T) {
		e.push("rbwide", "w1", "1", func(s *clientsdk.AppSpec) { s.History = 5 })
		e.push("rbwide", "w2", "2", func(s *clientsdk.AppSpec) { s.History = 2 })
		e.push("rbwide", "w3", "3", func(s *clientsdk.AppSpec) { s.History = 5 })
		back, err := e.c.Rollback(ctx, "rbwide", 2)
		if err != nil || back.RollbackOf != 2 || back.History != 5 || back.Env["A"] != "2" {
			t.Fatalf("rollback: %+v, %v; want version 2's spec keeping history 5", back, err)
		}
		if got := e.revisionKeys("rbwide"); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
			t.Fatalf("revisions after the rollback: %v, want 1 to 4", got)
		}
	})
	t.Run("an artifact that is gone", func(t *testing.T) {
		old := e.push("rbgone", "g1", "1")
		e.push("rbgone", "g2", "2")
		if err := e.objects.Delete(ctx, old.Artifact.Object); err != nil {
			t.Fatal(err)
		}
		_, err := e.c.Rollback(ctx, "rbgone", 1)
		ce, ok := clientsdk.AsError(err)
		if !ok || ce.Code != 410 || !strings.Contains(ce.Message, "no longer stored") {
			t.Fatalf("rollback to a version whose artifact is gone: %v; want 410", err)
		}
	})
}

// TestHistoryOfASpecFromBeforeTheRecord: an app stored before the record of
// revisions existed shows its current version alone and cannot roll back;
// its next push records both, and then it can.
func TestHistoryOfASpecFromBeforeTheRecord(t *testing.T) {
	t.Parallel()
	e := newHistoryEnv(t)
	ctx := context.Background()
	legacy := clientsdk.AppSpec{Name: "legacy", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/sleep", "1000"},
		Version: 5, TokenNonce: clientsdk.NewTokenNonce(), PushedAt: time.Now().UTC(), PushedBy: "old@host"}
	b, _ := json.Marshal(legacy)
	if _, err := e.apps.Create(ctx, "legacy", b); err != nil {
		t.Fatal(err)
	}
	h := e.history("legacy")
	if !slices.Equal(versionsOf(h), []uint64{5}) || !h.Versions[0].Current || !h.Versions[0].Oldest {
		t.Fatalf("history of a spec from before the record: %+v", h.Versions)
	}
	_, err := e.c.Rollback(ctx, "legacy", 0)
	if ce, ok := clientsdk.AsError(err); !ok || ce.Code != 404 || !strings.Contains(ce.Message, "kept: 5") {
		t.Fatalf("rollback of a spec from before the record: %v; want 404", err)
	}
	legacy.Command, legacy.Version, legacy.PushedBy = []string{"/bin/sleep", "2000"}, 0, ""
	if _, err := e.c.Push(ctx, legacy, "", nil); err != nil {
		t.Fatal(err)
	}
	if got := e.revisionKeys("legacy"); !slices.Equal(got, []uint64{5, 6}) {
		t.Fatalf("revisions after the first push: %v, want 5 and 6", got)
	}
	back, err := e.c.Rollback(ctx, "legacy", 0)
	if err != nil || back.Version != 7 || back.RollbackOf != 5 || back.Command[1] != "1000" {
		t.Fatalf("rollback after the first push: %+v, %v", back, err)
	}
}
