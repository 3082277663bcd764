// Package e2e drives the real dartup binary: `dartup serve` as a child
// process, the CLI against it, and real workers.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
)

// uidRanges counts the user id ranges given out by nextUIDRange.
var uidRanges atomic.Int32

// nextUIDRange returns user ids for one serve of this test process (as
// root, each app runs as one of them), 100 a serve from 40000 up, none
// shared with another serve of these tests nor with the default range
// (59000-59999) that other packages' tests use. A serve that restarts
// keeps its apps' ids; had it shared a range, a serve of a test running
// in parallel could take an id while it is down, and the restart would
// rightly refuse to start ("user id … is used by another dartup node").
func nextUIDRange() string {
	lo := 40000 + 100*(uidRanges.Add(1)%190)
	return fmt.Sprintf("%d-%d", lo, lo+99)
}

// server is a `dartup serve` child process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	data    string
	natsURL string
	httpURL string
	tlsCA   string // the self-signed CA, from the ready file
	log     *testutil.SyncBuffer
	// env is added to the CLI's environment (e.g. DARTUP_USER, DARTUP_PASSWORD).
	env []string
}

type readyFile struct {
	PID     int    `json:"pid"`
	NATSURL string `json:"nats_url"`
	HTTPURL string `json:"http_url"`
	TLSCA   string `json:"tls_ca"`
}

// startServe runs `dartup serve` on free ports with data in dir and waits
// until it has written its ready file.
func startServe(t *testing.T, dir string, args ...string) *server {
	t.Helper()
	return startServeEnv(t, nil, dir, args...)
}

// startServeEnv is startServe with env added to serve's environment.
func startServeEnv(t *testing.T, env []string, dir string, args ...string) *server {
	t.Helper()
	return startServeWrapped(t, nil, env, dir, args...)
}

// startServeWrapped is startServeEnv run through the command line wrap
// (e.g. a shell that lowers a limit first), which must exec the program
// given after it with its arguments.
func startServeWrapped(t *testing.T, wrap, env []string, dir string, args ...string) *server {
	t.Helper()
	bin := testutil.Dartup(t)
	if !slices.Contains(args, "--uid-range") && !slices.Contains(args, "--run-as") {
		args = append(args, "--uid-range", nextUIDRange())
	}
	argv := append(append(append([]string{}, wrap...), bin, "serve", "--data", dir, "--nats-addr", "127.0.0.1:0", "-p", "0"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var log testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, data: dir, log: &log}
	t.Cleanup(func() {
		if cmd.ProcessState == nil && stopOrDump(t, cmd, "serve") && !t.Failed() {
			t.Logf("serve log:\n%s", tailLines(log.String(), 60))
		}
		if t.Failed() {
			t.Logf("serve log:\n%s", log.String())
		}
	})
	testutil.WaitFor(t, 30*time.Second, "serve to write its ready file", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "serve.json"))
		if err != nil {
			return false
		}
		var rf readyFile
		if json.Unmarshal(b, &rf) != nil || rf.PID != cmd.Process.Pid {
			return false
		}
		s.natsURL, s.httpURL, s.tlsCA = rf.NATSURL, rf.HTTPURL, rf.TLSCA
		return true
	})
	return s
}

// stopOrDump sends SIGTERM to a dartup process and waits for it; one that
// has not stopped after 45 s fails the test and is sent SIGQUIT, so that its
// goroutines land in its log.
func stopOrDump(t *testing.T, cmd *exec.Cmd, what string) (slow bool) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = cmd.Process.Wait(); close(done) }()
	t0 := time.Now()
	select {
	case <-done:
		if d := time.Since(t0); d > 10*time.Second {
			t.Logf("%s took %s to stop after SIGTERM", what, d.Round(time.Millisecond))
			return true
		}
	case <-time.After(45 * time.Second):
		t.Errorf("%s did not stop within 45s of SIGTERM; its goroutines follow in its log", what)
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		<-done
	}
	return false
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dartup runs the CLI against s and returns stdout; it fails the test on error.
func (s *server) dartup(args ...string) string {
	s.t.Helper()
	out, err := s.try(args...)
	if err != nil {
		s.t.Fatalf("dartup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// try runs the CLI against s and returns combined output and the error.
func (s *server) try(args ...string) (string, error) { return s.tryIn("", args...) }

// tryIn is try run in folder dir ("" for this process's).
func (s *server) tryIn(dir string, args ...string) (string, error) {
	cmd := exec.Command(testutil.Dartup(s.t), args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "DARTUP_URL="+s.natsURL), s.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stop sends SIGTERM to serve and waits for it to exit.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_, _ = s.cmd.Process.Wait()
}

// kill9 kills serve with SIGKILL and waits for it.
func (s *server) kill9() {
	_ = s.cmd.Process.Kill()
	_, _ = s.cmd.Process.Wait()
}

// procsOf returns the pids of live processes whose environment has
// DARTUP_APP=app. It sees the whole machine, where other test packages run
// at the same time: tests that count processes use app names no other test
// uses ("chaosweb", not "web").
func procsOf(app string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := 0
		for _, c := range e.Name() {
			if c < '0' || c > '9' {
				pid = -1
				break
			}
			pid = pid*10 + int(c-'0')
		}
		if pid <= 0 {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == "DARTUP_APP="+app {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
