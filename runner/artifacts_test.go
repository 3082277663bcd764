package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCachePruneKeepsWhatSpecsUse(t *testing.T) {
	c, err := newCache(t.TempDir(), nil)
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
