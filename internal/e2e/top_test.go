//go:build linux

package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/creack/pty"
	"github.com/dartup/dartup/internal/testutil"
)

// ptyProc is a program running in a pseudo-terminal, its screen output
// kept as it came.
type ptyProc struct {
	t      *testing.T
	tty    *os.File
	out    testutil.SyncBuffer
	exited chan struct{}
	err    error // from Wait, once exited is closed
}

// startInPTY runs bin with args in a terminal of cols×rows with env added.
func startInPTY(t *testing.T, cols, rows uint16, env []string, bin string, args ...string) *ptyProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: cols, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	p := &ptyProc{t: t, tty: tty, exited: make(chan struct{})}
	go func() { _, _ = io.Copy(&p.out, tty) }()
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		tty.Close()
		if t.Failed() {
			t.Logf("screen output, escapes stripped:\n%s", ansi.Strip(p.out.String()))
		}
	})
	return p
}

// mark is where the output is now: waitScreen looks after it.
func (p *ptyProc) mark() int { return len(p.out.String()) }

// waitScreen waits until the output after from, escapes stripped, matches
// re; it fails the test if the program exits first. Stripped of the
// cursor moves, lines run into each other: a number in re ends with
// (\D|$), not \b.
func (p *ptyProc) waitScreen(from int, timeout time.Duration, what string, re *regexp.Regexp) {
	p.t.Helper()
	testutil.WaitFor(p.t, timeout, what, func() bool {
		select {
		case <-p.exited:
			p.t.Fatalf("the program exited (%v) while waiting for %s", p.err, what)
		default:
		}
		return re.MatchString(ansi.Strip(p.out.String()[from:]))
	})
}

// TestTopInATerminal runs `dartup top` in a real pseudo-terminal against a
// server with a daemon and a lambda: the screen shows them and the daemon's
// instance, the log pane shows a line the app prints after top started, it
// survives resizes and the server going away and coming back, and q quits
// with exit code 0 and the terminal restored.
func TestTopInATerminal(t *testing.T) {
	dir := testutil.TempDir(t)
	natsAddr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	// User ids of its own (as root) across the restart below.
	uids := nextUIDRange()
	s := startServeAt(t, dir, natsAddr, "--uid-range", uids)
	// The daemon prints a line on SIGUSR1, naming its pid and a count.
	s.dartup("push", "--name", "topd", "--runtime", "command", "--", "/bin/sh", "-c",
		`n=0; trap 'n=$((n+1)); echo "top-marker-$$-$n"' USR1; echo "started-$$"; while :; do sleep 0.1; done`)
	hello := testutil.BuildGo(t, "./internal/testutil/workers/lambdahello")
	s.dartup("push", "--lambda", "--name", "topfn", hello)
	s.dartup("invoke", "topfn", "--data", "x")
	pid := runningPID(t, s, "topd", 0, 0)

	p := startInPTY(t, 120, 40, []string{"DARTUP_URL=" + s.natsURL, "TERM=xterm-256color"}, testutil.Dartup(t), "top", "topd")
	p.waitScreen(0, 30*time.Second, "topd's instance (pid) and the lambda on the screen",
		regexp.MustCompile(fmt.Sprintf(`(?s)topd\s+0\s+running\s+\S+\s+%d(\D|$).*topfn\s+\S+/s\s+1\s`, pid)))
	// The app's first line (in the log pane's history) says its trap is set.
	p.waitScreen(0, 20*time.Second, "topd's first line", regexp.MustCompile(fmt.Sprintf(`topd\.0 \| started-%d(\D|$)`, pid)))

	from := p.mark()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	p.waitScreen(from, 20*time.Second, "the line topd printed after top started, in the log pane",
		regexp.MustCompile(fmt.Sprintf(`topd\.0 \| top-marker-%d-1(\D|$)`, pid)))

	// Small, then back: it draws on and does not crash.
	for _, size := range []pty.Winsize{{Cols: 30, Rows: 6}, {Cols: 8, Rows: 2}, {Cols: 120, Rows: 40}} {
		from := p.mark()
		if err := pty.Setsize(p.tty, &size); err != nil {
			t.Fatal(err)
		}
		p.waitScreen(from, 20*time.Second, fmt.Sprintf("a redraw at %dx%d", size.Cols, size.Rows), regexp.MustCompile(`dartup`))
	}

	// The server goes away: top says so and stays.
	from = p.mark()
	s.stop()
	p.waitScreen(from, 20*time.Second, "the refresh error", regexp.MustCompile(`cannot refresh for`))
	// It comes back (same address and data): top shows the restarted
	// instance and follows its output again.
	s = startServeAt(t, dir, natsAddr, "--uid-range", uids)
	pid2 := runningPID(t, s, "topd", 0, pid)
	from = p.mark()
	p.waitScreen(from, 30*time.Second, "the restarted instance's pid", regexp.MustCompile(fmt.Sprintf(`topd\s+0\s+running\s+\S+\s+%d(\D|$)`, pid2)))
	p.waitScreen(from, 20*time.Second, "the new process's first line", regexp.MustCompile(fmt.Sprintf(`topd\.0 \| started-%d(\D|$)`, pid2)))
	if err := syscall.Kill(pid2, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	p.waitScreen(from, 20*time.Second, "the new process's line after the server came back",
		regexp.MustCompile(fmt.Sprintf(`topd\.0 \| top-marker-%d-1(\D|$)`, pid2)))

	t0 := time.Now()
	if _, err := p.tty.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("top did not exit within 10s of q")
	}
	if p.err != nil {
		t.Fatalf("top exited with %v", p.err)
	}
	t.Logf("top exited %s after q", time.Since(t0).Round(time.Millisecond))
	if out := p.out.String(); !strings.Contains(out, "\x1b[?1049l") {
		t.Error("top did not leave the alternate screen")
	}
}
