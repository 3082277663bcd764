// Package testutil starts real dartup parts for tests: an embedded server on
// random loopback ports with storage in t.TempDir(), Go-built test workers,
// the real `nats` CLI, and the real Dart AOT runtime from the npm package
// sass-embedded-linux-x64. Nothing here is a mock.
package testutil

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// StartBroker starts a dartup broker with NATS and HTTP on free loopback ports
// and its data dir in t.TempDir(); it is shut down in t.Cleanup. Options may
// change the config before start.
func StartBroker(t testing.TB, opts ...func(*broker.Config)) *broker.Broker {
	t.Helper()
	cfg := broker.Config{
		DataDir:  TempDir(t),
		NATSAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Version:  "0.0.0-test",
	}
	if testing.Verbose() {
		cfg.Logger = TestLogger(t)
	}
	for _, o := range opts {
		o(&cfg)
	}
	b, err := broker.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return b
}

// TempDir is t.TempDir() that other users may pass through (mode 0711, and
// its parent too): a data dir for a server or runner, whose apps may run as
// users of their own (when the tests run as root) and need to reach their
// work dirs beside it.
func TempDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// Connect opens a TCP NATS connection to url, closed in t.Cleanup.
func Connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// WaitFor polls cond every 5 ms until it is true or timeout passes, then fails
// the test with msg. It is the way tests wait: never a bare sleep.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// RepoRoot returns the module root (the folder holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
)

// BuildGo builds the Go main package pkg (an import path, or a path relative
// to the repo root starting with "./") once per test binary and returns the
// executable's path. Builds run in the repo's module, so they use go.mod's
// dependencies and the shared build cache. The executables go to one
// folder per work tree (testBinDir), each replaced atomically by the next
// build of the same package: test runs do not leave a folder of
// executables behind each.
func BuildGo(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p
	}
	dir := testBinDir(t)
	out := filepath.Join(dir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
	tmp, err := os.CreateTemp(dir, ".build-")
	if err != nil {
		t.Fatal(err)
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("go", "build", "-o", tmp.Name(), pkg)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	// A rename: a test of another package that runs the old executable
	// keeps it.
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		t.Fatal(err)
	}
	buildCache[pkg] = out
	return out
}

// testBinDir is the folder BuildGo writes to: one per work tree (so that
// the tests of two trees never run each other's builds) and user, in the
// temporary folder; it must be a folder of ours, not a link.
func testBinDir(t testing.TB) string {
	sum := sha256.Sum256([]byte(RepoRoot(t)))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("dartup-testbins-%d-%x", os.Getuid(), sum[:6]))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() {
		t.Fatalf("%s is not a folder of this user's: remove it", dir)
	}
	// Apps may run as users of their own (when the tests run as root):
	// they must be able to run what the tests build.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Dartup builds and returns the dartup binary.
func Dartup(t testing.TB) string { return BuildGo(t, "./cmd/dartup") }

// NATSCLI builds and returns the real `nats` CLI (natscli, pinned as a tool in go.mod).
func NATSCLI(t testing.TB) string { return BuildGo(t, "github.com/nats-io/natscli/nats") }

// InCI reports whether the tests run in CI (CI=true), where missing tools fail
// tests instead of skipping them.
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail skips the test with a loud reason outside CI, and fails it in CI.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("required in CI: %s", msg)
	}
	t.Skipf("SKIPPED (would fail in CI): %s", msg)
}

// WaitHosted waits until a runner hosts lambda name (answers its presence
// probe, which a runner subscribes to after lambda.NAME): a raw request
// sent after that reaches the runner, where one sent before gets "no
// responders" (clientsdk's Invoke then asks why and sends it again once a
// runner hosts the lambda).
func WaitHosted(t testing.TB, nc *nats.Conn, name string) {
	t.Helper()
	WaitFor(t, 30*time.Second, "a runner to host lambda "+name, func() bool {
		_, err := nc.Request(clientsdk.LambdaHostedSubject(name), nil, time.Second)
		return err == nil
	})
}
