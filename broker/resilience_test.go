package broker_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
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
