package e2e

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dartup/dartup/internal/testutil"
)

// TestLambdasThroughTheProduct pushes lambdas with the real CLI into a real
// `dartup serve` and calls them the ways a user does: the stock `nats req`,
// HTTP on the gateway, and `dartup invoke`; one of them is a real Dart AOT
// program (sass) as a stdio lambda.
func TestLambdasThroughTheProduct(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	natsCLI := testutil.NATSCLI(t)
	req := func(subject, data string) string {
		t.Helper()
		out, err := exec.Command(natsCLI, "--server", s.natsURL, "req", subject, data, "--raw").CombinedOutput()
		if err != nil {
			t.Fatalf("nats req %s: %v\n%s", subject, err, out)
		}
		return strings.TrimSpace(string(out))
	}

	hello := testutil.BuildGo(t, "./internal/testutil/workers/lambdahello")
	if out := s.dartup("push", "--lambda", "--name", "hello", hello); !strings.Contains(out, " • hello - dead") {
		t.Fatalf("push printed %q", out)
	}
	if got := req("lambda.hello", "world"); got != "Hello, world!" {
		t.Fatalf("nats req lambda.hello answered %q", got)
	}
	resp, err := http.Get(s.httpURL + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("GET /hello: %d %q", resp.StatusCode, body)
	}
	if out := s.dartup("invoke", "hello", "--data", "cli"); !strings.Contains(out, "Hello, cli!") {
		t.Fatalf("dartup invoke: %q", out)
	}
	if out := s.dartup("list"); !strings.Contains(out, " • hello - alive - 1 warm") {
		t.Fatalf("list after invocations: %q", out)
	}
	// An unknown name is told apart from a hang: the stock CLI gets "no
	// responders" at once, and dartup invoke (or dartup.lambda.why.NAME)
	// says why.
	out, _ := exec.Command(natsCLI, "--server", s.natsURL, "req", "lambda.nope", "").CombinedOutput()
	if !strings.Contains(strings.ToLower(string(out)), "no responders") {
		t.Fatalf("nats req lambda.nope printed %s", out)
	}
	if out, code := s.exitCode("invoke", "nope"); code != 1 || !strings.Contains(out, `no lambda named "nope"`) {
		t.Fatalf("dartup invoke nope: exit %d\n%s", code, out)
	}
	out, _ = exec.Command(natsCLI, "--server", s.natsURL, "req", "dartup.lambda.why.nope", "").CombinedOutput()
	if !strings.Contains(string(out), "404") {
		t.Fatalf("nats req dartup.lambda.why.nope printed %s", out)
	}

	dart, snapshot := testutil.DartSass(t)
	s.dartup("push", "--lambda", "--name", "sass", "--protocol", "stdio", "--runtime", "aot",
		"--dart-aot-runtime", dart, "--arg", "--stdin", "--arg", "--no-source-map", snapshot)
	css := req("lambda.sass", "$c: #abcdef; .a { .b { color: $c; } }")
	if !strings.Contains(css, ".a .b {") || !strings.Contains(css, "#abcdef") {
		t.Fatalf("sass lambda answered %q", css)
	}
	out, _ = exec.Command(natsCLI, "--server", s.natsURL, "req", "lambda.sass", ".a { color: ").CombinedOutput()
	if !strings.Contains(string(out), "500") {
		t.Fatalf("bad SCSS should be a 500 function error, nats req printed %s", out)
	}
}

// A .dart file needs the Dart SDK to be built; without one on PATH, push says
// what to install and changes nothing.
func TestPushDartSourceWithoutSDK(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	src := filepath.Join(testutil.TempDir(t), "main.dart")
	if err := os.WriteFile(src, []byte("void main() => print('hi');\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.Dartup(t), "push", "--name", "web", src)
	cmd.Env = []string{"PATH=/nonexistent", "DARTUP_URL=" + s.natsURL, "HOME=" + testutil.TempDir(t)}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "no Dart SDK is on PATH") || !strings.Contains(string(out), "dart compile exe") {
		t.Fatalf("push of Dart source without an SDK: %v\n%s", err, out)
	}
	if list := s.dartup("list"); !strings.Contains(list, "No active applications.") {
		t.Fatalf("a failed push left an app: %q", list)
	}
}
