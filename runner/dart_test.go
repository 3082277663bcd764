package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// TestDartAOTDaemon runs a real AOT-compiled Dart program, `sass --watch`,
// as a supervised daemon on the Dart AOT runtime, and checks that it works
// and comes back after SIGKILL.
// waitUntil polls cond every 50 ms for up to d; it reports whether cond held.
func waitUntil(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestDartAOTDaemon(t *testing.T) {
	dart, snapshot := testutil.DartSass(t)
	e := newEnv(t)
	dir := testutil.TempDir(t)
	// The app may run as a user of its own: it reads and writes here.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	in, out := filepath.Join(dir, "in.scss"), filepath.Join(dir, "out.css")
	if err := os.WriteFile(in, []byte("$c: #123456;\n.a { .b { color: $c; } }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := clientsdk.AppSpec{Name: "sass", Runtime: clientsdk.RuntimeAOT, Interpreter: dart,
		Args: []string{"--watch", "--poll", "--no-source-map", in + ":" + out}}
	if _, err := e.c.Push(context.Background(), spec, snapshot, nil); err != nil {
		t.Fatal(err)
	}
	st := e.waitState("sass", 0, clientsdk.StateRunning, 20*time.Second)
	readCSS := func(want string) bool {
		b, err := os.ReadFile(out)
		return err == nil && strings.Contains(string(b), want)
	}
	testutil.WaitFor(t, 20*time.Second, "sass to compile in.scss into out.css", func() bool { return readCSS(".a .b {") && readCSS("#123456") })

	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the Dart daemon to be restarted after SIGKILL", func() bool {
		s, ok := e.statusOf("sass", 0)
		return ok && s.State == clientsdk.StateRunning && s.PID != st.PID && s.Restarts == 1 && alive(s.PID)
	})
	// Change the file until the restarted sass has seen a change (one made
	// between its start and its first poll would go unseen; its own "Sass
	// is watching" line does not always reach the logs in time, so the test
	// does not wait for it). Each write is a new color, so an old compile
	// cannot pass for a new one.
	for i := 0; ; i++ {
		color := fmt.Sprintf("#%06x", 0x100000+i)
		if err := os.WriteFile(in, []byte(".x { .y { color: "+color+"; } }\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if waitUntil(2*time.Second, func() bool { return readCSS(".x .y {") && readCSS(color) }) {
			break
		}
		if i == 30 {
			t.Fatal("the restarted sass did not recompile the changed file within a minute")
		}
	}
	s, _ := e.statusOf("sass", 0)
	if s.LastSignal != "SIGKILL" {
		t.Errorf("last exit should be SIGKILL, got %+v", s)
	}
}
