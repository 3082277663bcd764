package broker_test

import (
	"context"
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

// TestLambdaFloodIsBounded floods lambda.* with requests for lambdas that
// do not exist and for one that no runner hosts: the server's log stays
// short (a line per kind per period, not one per request), and a request
// after the flood is answered at once.
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
	var answered atomic.Int64
	sub, err := nc.Subscribe("_INBOX.flood.>", func(*nats.Msg) { answered.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	before := strings.Count(log.String(), "\n")
	const flood = 50000
	for i := range flood {
		subject := fmt.Sprintf("lambda.flood%d", i%500)
		if i%2 == 0 {
			subject = "lambda.unhosted"
		}
		if err := nc.PublishRequest(subject, fmt.Sprintf("_INBOX.flood.%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	msg, err := nc.Request("lambda.afterflood", nil, 20*time.Second)
	if err != nil {
		t.Fatalf("a request after the flood: %v", err)
	}
	if e := clientsdk.ErrorFromMsg(msg); e == nil || e.Code != 404 {
		t.Fatalf("a request after the flood answered %v, want 404", e)
	}
	t.Logf("%d of %d flood requests answered; the next one answered %s after the flood was sent", answered.Load(), flood, time.Since(start).Round(time.Millisecond))
	if lines := strings.Count(log.String(), "\n") - before; lines > 20 {
		out := log.String()
		t.Fatalf("the flood wrote %d log lines; the last ones:\n%s", lines, out[max(0, len(out)-2000):])
	}
}
