package broker_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Chunks of an upload that never finished (its client or server was killed)
// and artifacts no app uses are collected once old enough; an app's
// artifact is kept.
func TestCollectOrphans(t *testing.T) {
	ctx := context.Background()
	b := testutil.StartBroker(t)
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	file := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(file, append([]byte("\x7fELF"), make([]byte, 4096)...), 0o755); err != nil {
		t.Fatal(err)
	}
	spec, err := c.Push(ctx, clientsdk.AppSpec{Name: "kept", Runtime: clientsdk.RuntimeExe, Kind: clientsdk.KindDaemon}, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // an upload cut short: chunks, no object
		if _, err := js.Publish(ctx, "$O."+clientsdk.ArtifactsBucket+".C.UNFINISHEDUPLOAD", make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	objects, err := js.ObjectStore(ctx, clientsdk.ArtifactsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := objects.PutBytes(ctx, "sha256/unused", []byte("no app uses me")); err != nil {
		t.Fatal(err)
	}
	if chunks, objs, err := b.CollectOrphans(ctx, time.Hour); err != nil || chunks+objs != 0 {
		t.Fatalf("young uploads collected: %d chunks, %d objects, %v", chunks, objs, err)
	}
	chunks, objs, err := b.CollectOrphans(ctx, 0)
	if err != nil || chunks != 1 || objs != 1 {
		t.Fatalf("collected %d unfinished uploads and %d unused artifacts (%v), want 1 and 1", chunks, objs, err)
	}
	if _, err := objects.GetInfo(ctx, "sha256/unused"); err == nil {
		t.Fatal("the unused artifact is still there")
	}
	if _, err := objects.GetInfo(ctx, spec.Artifact.Object); err != nil {
		t.Fatalf("the app's artifact went: %v", err)
	}
	stream, _ := js.Stream(ctx, "OBJ_"+clientsdk.ArtifactsBucket)
	if _, err := stream.GetLastMsgForSubject(ctx, "$O."+clientsdk.ArtifactsBucket+".C.UNFINISHEDUPLOAD"); err == nil {
		t.Fatal("the unfinished upload's chunks are still there")
	}
}

// One slow request does not hold up the others: a push waiting for an
// artifact that is not there is still unanswered when another push, sent
// after it, has its answer.
func TestSlowPushDoesNotBlockOthers(t *testing.T) {
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL())
	digest := strings.Repeat("ab", 32)
	slow, _ := json.Marshal(clientsdk.AppSpec{Name: "slowpush", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeExe,
		Artifact: &clientsdk.ArtifactRef{Object: clientsdk.ArtifactObjectName(digest), SHA256: digest, Size: 10}})
	quick, _ := json.Marshal(clientsdk.AppSpec{Name: "quickpush", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/true"}})
	answers := make(chan string, 2)
	go func() {
		_, _ = nc.Request("dartup.api.push", slow, 10*time.Second)
		answers <- "slow"
	}()
	time.Sleep(100 * time.Millisecond) // the slow push is being handled
	go func() {
		_, _ = nc.Request("dartup.api.push", quick, 10*time.Second)
		answers <- "quick"
	}()
	if first := <-answers; first != "quick" {
		t.Fatalf("the %s push answered first: requests are served one at a time", first)
	}
	<-answers
}

// TestPushAfterCallerGaveUpIsNotApplied sends a push whose caller has
// stopped waiting (its deadline header is past): the server applies
// nothing, so a push that timed out on the client never lands later.
func TestPushAfterCallerGaveUpIsNotApplied(t *testing.T) {
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL())
	spec, _ := json.Marshal(clientsdk.AppSpec{Name: "latepush", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/true"}})
	m := nats.NewMsg(clientsdk.APISubject(clientsdk.VerbPush))
	m.Data = spec
	m.Header.Set(clientsdk.HeaderDeadline, strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10))
	reply, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := clientsdk.ErrorFromMsg(reply); e == nil || e.Code != 503 {
		t.Fatalf("late push answered %v %s, want 503", e, reply.Data)
	}
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Describe(context.Background(), "latepush"); !errors.Is(err, clientsdk.ErrNotFound) {
		t.Fatalf("the late push was applied: describe = %v", err)
	}
}

// TestLambdaFloodIsBounded floods lambda.* and dartup.lambda.why.* with
// requests for lambdas that do not exist and for one that no runner hosts:
// the server refuses the lambda.* ones itself (no responders), the
// brokers' log stays short (a line per kind per period, not one per
// request), and an invocation after the flood is answered with its cause.
func TestLambdaFloodIsBounded(t *testing.T) {
	var log testutil.SyncBuffer
	b := testutil.StartBroker(t, func(c *broker.Config) { c.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	nc := testutil.Connect(t, b.NATSURL())
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Push(context.Background(), clientsdk.AppSpec{Name: "unhosted", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/true"}}, "", nil); err != nil {
		t.Fatal(err)
	}
	var answered, noResponders atomic.Int64
	sub, err := nc.Subscribe("_INBOX.flood.>", func(m *nats.Msg) {
		answered.Add(1)
		if m.Header.Get("Status") == "503" && len(m.Data) == 0 {
			noResponders.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	before := strings.Count(log.String(), "\n")
	const flood = 50000
	for i := range flood {
		name := fmt.Sprintf("flood%d", i%500)
		if i%4 < 2 {
			name = "unhosted"
		}
		subject := clientsdk.LambdaSubject(name)
		if i%2 == 0 {
			subject = clientsdk.LambdaWhySubject(name)
		}
		if err := nc.PublishRequest(subject, fmt.Sprintf("_INBOX.flood.%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Invoke(ctx, "afterflood", nil); !errors.Is(err, clientsdk.ErrNotFound) {
		t.Fatalf("an invocation after the flood: %v, want 404", err)
	}
	t.Logf("%d of %d flood requests answered (%d no responders); the next invocation answered %s after the flood was sent",
		answered.Load(), flood, noResponders.Load(), time.Since(start).Round(time.Millisecond))
	testutil.WaitFor(t, 10*time.Second, "the server to refuse every lambda.* request of the flood", func() bool { return noResponders.Load() == flood/2 })
	if lines := strings.Count(log.String(), "\n") - before; lines > 20 {
		out := log.String()
		t.Fatalf("the flood wrote %d log lines; the last ones:\n%s", lines, out[max(0, len(out)-2000):])
	}
}

// A missing ledger is reported (the bucket could not be checked), and a
// ledger entry that is not a valid spec of its name is never put back.
func TestLedgerMissingOrBad(t *testing.T) {
	dir := testutil.TempDir(t)
	start := func() *broker.Broker {
		b, err := broker.Start(context.Background(), broker.Config{DataDir: dir, NATSAddr: "127.0.0.1:0", Version: "0.0.0-test"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	damage := func(b *broker.Broker) []string {
		c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		si, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return si.StoreDamage
	}
	b := start()
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(context.Background(), clientsdk.AppSpec{Name: "ledgered", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/true"}}, "", nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	_ = b.Shutdown(context.Background())
	ledger := filepath.Join(dir, "apps.ledger")
	if err := os.Remove(ledger); err != nil {
		t.Fatal(err)
	}
	b = start()
	if d := damage(b); len(d) != 1 || !strings.Contains(d[0], "apps.ledger is missing") {
		t.Fatalf("store damage after the ledger was deleted: %q", d)
	}
	_ = b.Shutdown(context.Background())
	// A ledger that claims a newer, bogus spec for the app and an app of
	// an impossible name.
	bogus := `{"apps":{"ledgered":{"revision":999,"spec":{"name":"other"}},"bad.name":{"revision":999,"spec":{}}}}`
	if err := os.WriteFile(ledger, []byte(bogus), 0o600); err != nil {
		t.Fatal(err)
	}
	b = start()
	defer b.Shutdown(context.Background())
	d := strings.Join(damage(b), "\n")
	if !strings.Contains(d, `could not be repaired: the ledger's spec is named "other"`) || !strings.Contains(d, `the ledger's name "bad.name" is not an app name`) {
		t.Fatalf("store damage with a bogus ledger: %q", d)
	}
	c, err = clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ai, err := c.Describe(context.Background(), "ledgered"); err != nil || ai.Spec.Name != "ledgered" {
		t.Fatalf("the app after a bogus ledger: %+v %v", ai, err)
	}
}

// On a store at its limit a push answers 507 DiskFull with the figures,
// and a remove still works and makes room (its artifact's chunks are
// purged before anything is written).
func TestRemoveOnFullStore(t *testing.T) {
	b := testutil.StartBroker(t, func(c *broker.Config) { c.MaxStore = broker.MinStore })
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := t.TempDir()
	size := 3 << 20
	push := func(name string) error {
		f := filepath.Join(dir, name)
		data := make([]byte, size)
		_, _ = rand.Read(data)
		if err := os.WriteFile(f, data, 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := c.Push(context.Background(), clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeExe}, f, nil)
		return err
	}
	var pushed []string
	for i := range 10 {
		name := fmt.Sprintf("full%d", i)
		err := push(name)
		if err == nil {
			pushed = append(pushed, name)
			continue
		}
		if !errors.Is(err, clientsdk.ErrDiskFull) || !strings.Contains(err.Error(), "disk full on server") {
			t.Fatalf("push %s on a full store: %v, want 507 DiskFull", name, err)
		}
		break
	}
	if len(pushed) == 0 || len(pushed) == 10 {
		t.Fatalf("pushed %d apps of 3 MiB into a 16 MiB store", len(pushed))
	}
	// Fill what is left with small ones, to the last byte the store takes.
	size = 128 << 10
	for i := 0; i < 100 && push(fmt.Sprintf("small%d", i)) == nil; i++ {
	}
	if err := c.Remove(context.Background(), pushed[0]); err != nil {
		t.Fatalf("remove on a full store: %v", err)
	}
	if err := push("afterremove"); err != nil {
		t.Fatalf("push after the remove made room: %v", err)
	}
}
