package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

func TestCachePruneKeepsWhatSpecsUse(t *testing.T) {
	c, err := newCache(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	used, unused := strings.Repeat("a", 64), strings.Repeat("b", 64)
	files := map[string]time.Duration{used: 0, unused: 0, ".fetch-old": 2 * time.Hour, ".fetch-new": 0}
	for name, age := range files {
		p := filepath.Join(c.dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		_ = os.Chtimes(p, when, when)
	}
	if n := c.prune(map[string]bool{used: true}); n != 2 {
		t.Fatalf("pruned %d files, want 2 (the unused artifact and the old fetch leftover)", n)
	}
	for name, want := range map[string]bool{used: true, unused: false, ".fetch-old": false, ".fetch-new": true} {
		_, err := os.Stat(filepath.Join(c.dir, name))
		if (err == nil) != want {
			t.Errorf("%s: present=%v, want %v", name, err == nil, want)
		}
	}
}

// TestCacheReplacesCorruptCopy: a cached artifact whose bytes changed on
// disk (same size) is not used: it is fetched again from the object store,
// by the cache that wrote it and by a new one (a restarted runner).
func TestCacheReplacesCorruptCopy(t *testing.T) {
	b := testutil.StartBroker(t)
	js, err := jetstream.New(testutil.Connect(t, b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	objects, err := js.ObjectStore(ctx, clientsdk.ArtifactsBucket)
	if err != nil {
		t.Fatal(err)
	}
	right := []byte("the right bytes\n")
	sum := sha256.Sum256(right)
	digest := hex.EncodeToString(sum[:])
	ref := &clientsdk.ArtifactRef{Object: clientsdk.ArtifactObjectName(digest), SHA256: digest, Size: int64(len(right))}
	if _, err := objects.PutBytes(ctx, ref.Object, right); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := newCache(dir, objects, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(c *cache, what string) {
		t.Helper()
		p, err := c.path(ctx, ref)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got, _ := os.ReadFile(p); string(got) != string(right) {
			t.Fatalf("%s: the cache answered a file holding %q", what, got)
		}
	}
	corrupt := func() {
		t.Helper()
		p := filepath.Join(dir, digest)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("the wrong bytes\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, st.ModTime(), st.ModTime()) // hide the write from the modification time
	}
	check(c, "first fetch")
	check(c, "cached")
	corrupt()
	check(c, "after the cached copy was overwritten")
	corrupt()
	c2, err := newCache(dir, objects, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(c2, "a new cache over a corrupt copy")
}
