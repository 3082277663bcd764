package runner_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPoisonedArtifactIsReplaced: an object with other bytes of the same
// size, stored under the name (and digest header) of a file, does not poison
// pushes of that file: the server reads the object through and says it is
// corrupt, the client uploads the file again, and the app runs the right
// bytes — also when the object is poisoned again after a good push.
func TestPoisonedArtifactIsReplaced(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	right := []byte("#!/bin/sh\necho right-bytes\nexec sleep 3600\n")
	wrong := []byte("#!/bin/sh\necho wrong-bytes\nexec sleep 3600\n")
	file := filepath.Join(t.TempDir(), "app.sh")
	if err := os.WriteFile(file, right, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(right)
	digest := hex.EncodeToString(sum[:])
	name := clientsdk.ArtifactObjectName(digest)
	js, err := jetstream.New(e.c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	objects, err := js.ObjectStore(ctx, clientsdk.ArtifactsBucket)
	if err != nil {
		t.Fatal(err)
	}
	poison := func() {
		t.Helper()
		hdr := nats.Header{}
		hdr.Set(clientsdk.HeaderArtifactSHA256, digest)
		if _, err := objects.Put(ctx, jetstream.ObjectMeta{Name: name, Headers: hdr}, bytes.NewReader(wrong)); err != nil {
			t.Fatal(err)
		}
	}
	storedRight := func() bool {
		t.Helper()
		r, err := objects.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Equal(b, right)
	}

	poison()
	spec := clientsdk.AppSpec{Name: "poisoned", Runtime: clientsdk.RuntimeExe}
	if _, err := e.c.Push(ctx, spec, file, nil); err != nil {
		t.Fatalf("push over a poisoned object: %v", err)
	}
	if !storedRight() {
		t.Fatal("the push left the poisoned bytes in the object store")
	}
	e.waitState("poisoned", 0, clientsdk.StateRunning, 10*time.Second)
	e.waitLog("poisoned", "right-bytes")

	// Poisoned again after a good push (a new version of the object): the
	// next push notices and replaces it again.
	poison()
	spec.Env = map[string]string{"REV": "2"}
	stored, err := e.c.Push(ctx, spec, file, nil)
	if err != nil {
		t.Fatalf("second push: %v", err)
	}
	if !storedRight() {
		t.Fatal("the second push left the poisoned bytes in the object store")
	}
	testutil.WaitFor(t, 10*time.Second, "the second push to run", func() bool {
		st, ok := e.statusOf("poisoned", 0)
		return ok && st.State == clientsdk.StateRunning && st.SpecRevision == stored.Revision
	})
}
