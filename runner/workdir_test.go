package runner_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/runner"
)

// Instances of one app expose the same artifact at once, some while others
// already run it: the exposed file never goes missing (it was removed and
// linked again when it was not the cached file itself, and an instance
// that started in between failed with "no such file or directory"), and
// no temporary name is left behind.
func TestExposeArtifactNeverMissing(t *testing.T) {
	root := testutil.TempDir(t)
	cached := filepath.Join(testutil.TempDir(t), "blob")
	if err := os.WriteFile(cached, []byte("#!/bin/sh\n"), 0o555); err != nil {
		t.Fatal(err)
	}
	for round := range 50 {
		dst, err := runner.ExposeArtifact(root, "app", "d1", cached)
		if err != nil {
			t.Fatal(err)
		}
		// A copy in its place (as a copy across file systems leaves it):
		// not the cached file, so the next exposure replaces it.
		if err := os.Remove(dst); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte("#!/bin/sh\n"), 0o555); err != nil {
			t.Fatal(err)
		}
		var missing atomic.Int64
		stop := make(chan struct{})
		var watch sync.WaitGroup
		watch.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := os.Stat(dst); errors.Is(err, fs.ErrNotExist) {
					missing.Add(1)
				}
			}
		})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := runner.ExposeArtifact(root, "app", "d1", cached); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		close(stop)
		watch.Wait()
		if n := missing.Load(); n > 0 {
			t.Fatalf("round %d: the exposed artifact was missing %d times while instances exposed it", round, n)
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, ".artifacts", "app", "d1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "app" {
		t.Fatalf("left behind: %v", entries)
	}
}
