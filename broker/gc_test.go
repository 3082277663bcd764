package broker_test

import (
	"context"
	"os"
	"path/filepath"
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
