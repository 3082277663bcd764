package runner_test

import (
	"context"
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
	// Change the file only once the new sass watches it (a change between
	// its first compile and its first poll would go unseen).
	// Generous: on a loaded machine (the full suite under -race) the Dart
	// runtime's start and the log round trip have taken over 20 s.
	testutil.WaitFor(t, 45*time.Second, "the restarted sass to watch", func() bool {
		return e.countLog("sass", "Sass is watching for changes") >= 2
	})
	if err := os.WriteFile(in, []byte(".x { .y { color: red; } }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the restarted sass to recompile the changed file", func() bool { return readCSS(".x .y {") })
	s, _ := e.statusOf("sass", 0)
	if s.LastSignal != "SIGKILL" {
		t.Errorf("last exit should be SIGKILL, got %+v", s)
	}
}
