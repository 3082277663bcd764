package broker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPushVerifiesArtifactBytes: the push verb reads the artifact object
// through and refuses one whose bytes do not have the digest its name (and
// its header) claims, with 400 ArtifactCorrupt; every new version of the
// object is checked again.
func TestPushVerifiesArtifactBytes(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL())
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := js.ObjectStore(ctx, clientsdk.ArtifactsBucket)
	if err != nil {
		t.Fatal(err)
	}
	right := bytes.Repeat([]byte("right "), 300000) // a few chunks
	wrong := bytes.Repeat([]byte("wrong "), 300000)
	sum := sha256.Sum256(right)
	digest := hex.EncodeToString(sum[:])
	ref := &clientsdk.ArtifactRef{Object: clientsdk.ArtifactObjectName(digest), SHA256: digest, Size: int64(len(right))}
	put := func(data []byte) {
		t.Helper()
		hdr := nats.Header{}
		hdr.Set(clientsdk.HeaderArtifactSHA256, digest)
		meta := jetstream.ObjectMeta{Name: ref.Object, Headers: hdr, Opts: &jetstream.ObjectMetaOptions{ChunkSize: clientsdk.ArtifactChunkSize}}
		if _, err := objects.Put(ctx, meta, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := json.Marshal(clientsdk.AppSpec{Name: "app", Runtime: clientsdk.RuntimeExe, Artifact: ref})
	push := func() *clientsdk.Error {
		t.Helper()
		return rawRequest(t, nc, clientsdk.APISubject(clientsdk.VerbPush), body)
	}
	wantCorrupt := func(e *clientsdk.Error) {
		t.Helper()
		if e == nil || e.Code != 400 || e.Type != clientsdk.TypeArtifactCorrupt || !strings.Contains(e.Message, ref.Object) {
			t.Fatalf("push of a poisoned object: %v; want 400 %s naming the object", e, clientsdk.TypeArtifactCorrupt)
		}
	}
	put(wrong)
	wantCorrupt(push())
	put(right)
	if e := push(); e != nil {
		t.Fatalf("push of the right bytes: %v", e)
	}
	if e := push(); e != nil {
		t.Fatalf("push of the same verified object again: %v", e)
	}
	put(wrong)
	wantCorrupt(push())
}
