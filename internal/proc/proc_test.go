package proc_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/proc"
)

// A program still open for writing (as when the artifact cache has just
// written it and a child forked meanwhile holds the descriptor) fails to
// exec with ETXTBSY for a moment; Start waits it out.
func TestStartRetriesTextFileBusy(t *testing.T) {
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true:", err)
	}
	path := filepath.Join(t.TempDir(), "prog")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bin); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.Close()
	}()
	p, err := proc.Start(proc.Spec{Path: path})
	if err != nil {
		t.Fatalf("start while the program was briefly open for writing: %v", err)
	}
	<-p.Done()
	if ex := p.Exit(); ex.Code != 0 {
		t.Fatalf("exit %+v", ex)
	}
}
