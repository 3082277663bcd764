package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
)

// serveProc is `dartup serve` running as a child process.
type serveProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	data  string
	out   *testutil.SyncBuffer // stdout and stderr
	done  chan struct{}
	err   error // from Wait, valid after done
	ready readyFile
}

// startServe starts `dartup serve --data dir ARGS…` without waiting for it.
func startServe(t *testing.T, dir string, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(testutil.Dartup(t), append([]string{"serve", "--data", dir}, args...)...)
	p := &serveProc{t: t, cmd: cmd, data: dir, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("dartup serve %s output:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// startServeLocal starts serve on free loopback ports and waits until ready.
func startServeLocal(t *testing.T, dir string, args ...string) *serveProc {
	t.Helper()
	p := startServe(t, dir, append([]string{"--nats-addr", "127.0.0.1:0", "-p", "0"}, args...)...)
	p.waitReady()
	return p
}

// waitReady waits for the ready file DATA/serve.json written by this process.
func (p *serveProc) waitReady() {
	p.t.Helper()
	testutil.WaitFor(p.t, 30*time.Second, "dartup serve to write "+ReadyFileName, func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("dartup serve exited before it was ready: %v\n%s", p.err, p.out.String())
		default:
		}
		b, err := os.ReadFile(filepath.Join(p.data, ReadyFileName))
		if err != nil {
			return false
		}
		var rf readyFile
		if json.Unmarshal(b, &rf) != nil || rf.PID != p.cmd.Process.Pid {
			return false
		}
		p.ready = rf
		return true
	})
}

// wait waits for the process to exit and returns its exit code.
func (p *serveProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("dartup serve did not exit within %s\n%s", timeout, p.out.String())
	}
	return exitCode(p.err)
}

// stop sends SIGTERM and returns the exit code.
func (p *serveProc) stop() int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	return p.wait(30 * time.Second)
}

func (p *serveProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// result is the outcome of one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the dartup binary with args, stdin and extra environment; it
// never inherits a DARTUP_URL or password from the test's environment.
func runCLI(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Dartup(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("dartup %s did not finish in time", strings.Join(args, " "))
	}
	code := exitCode(err)
	if code < 0 {
		t.Fatalf("dartup %s: %v", strings.Join(args, " "), err)
	}
	return result{out.String(), errb.String(), code}
}

// cleanEnv is the test's environment without dartup's and nats' own
// variables, with HOME and XDG_CONFIG_HOME in a scratch dir so that no user
// `nats context` is picked up.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "DARTUP_") || strings.HasPrefix(k, "NATS_") || k == "HOME" || k == "XDG_CONFIG_HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+scratchHome, "XDG_CONFIG_HOME="+filepath.Join(scratchHome, ".config"), "NO_COLOR=1")
}

var scratchHome = func() string {
	d, err := os.MkdirTemp("", "dartup-cmd-test-home-")
	if err != nil {
		panic(err)
	}
	return d
}()

// natsCLI runs the real `nats` CLI and returns its combined output and error.
func natsCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.NATSCLI(t), args...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}
