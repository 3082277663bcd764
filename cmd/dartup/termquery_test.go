//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// TestStartsWithoutQueryingTheTerminal runs this test binary (which links
// what dartup links, bubbletea included) in a pseudo-terminal that never
// answers, as ssh -t, script or expect give: it must not write the
// terminal queries (background colour, cursor position) that bubbletea v1's
// package init sends through lipgloss and termenv, which wait up to 5 s for
// an answer before every command and leave their bytes in the output; and
// TERM must be as it was once main has restored it (dartup top's colours).
func TestStartsWithoutQueryingTheTerminal(t *testing.T) {
	if os.Getenv("DARTUP_TEST_TERM_CHILD") == "1" {
		restoreTerm()
		fmt.Printf("TERM=%q\n", os.Getenv("TERM"))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStartsWithoutQueryingTheTerminal$", "-test.count=1")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CI=") && !strings.HasPrefix(kv, "TERM=") { // termenv never queries under CI
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DARTUP_TEST_TERM_CHILD=1", "TERM=xterm-256color")
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out, _ := io.ReadAll(tty) // ends with EIO once the child exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%q", err, out)
	}
	for _, query := range []string{"\x1b]11;?", "\x1b]10;?", "\x1b[6n"} {
		if strings.Contains(string(out), query) {
			t.Errorf("the program sent the terminal query %q at start:\n%q", query, out)
		}
	}
	if !strings.Contains(string(out), `TERM="xterm-256color"`) {
		t.Errorf("TERM is not restored to xterm-256color:\n%q", out)
	}
}
