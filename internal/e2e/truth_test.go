package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// exitCode runs the CLI against s and returns its combined output and exit code.
func (s *server) exitCode(args ...string) (string, int) {
	out, err := s.try(args...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out, ee.ExitCode()
	}
	if err != nil {
		s.t.Fatalf("dartup %s: %v", strings.Join(args, " "), err)
	}
	return out, 0
}

// TestPushSaysWhatRuns pushes a healthy app, a crash-looping one, an
// unplaceable one and one whose runtime is missing: push waits for each
// outcome, prints it, and exits 0 only for the one that runs; `list --json`
// says the same. A lambda that cannot start answers `nats req` with its real
// cause. kill and remove return only once a worker that ignores SIGTERM is
// gone.
func TestPushSaysWhatRuns(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")

	out, code := s.exitCode("push", "--name", "good", "-j", "2", "--env", "WORKER_MODE=run", worker)
	if code != 0 || !strings.Contains(out, " • good - alive - 2/2 running") {
		t.Fatalf("a healthy push: exit %d\n%s", code, out)
	}
	out, code = s.exitCode("push", "--name", "bad", "--runtime", "command", "--", "/bin/sh", "-c", "exit 7")
	if code != 1 || !strings.Contains(out, " • bad - error - crash loop: exit code 7") {
		t.Fatalf("a crash-looping push: exit %d\n%s", code, out)
	}
	out, code = s.exitCode("push", "--name", "nowhere", "--constraint", "zone=nowhere", "--runtime", "command", "--", "/bin/sleep", "100")
	if code != 1 || !strings.Contains(out, "pending: no live node matches zone=nowhere") {
		t.Fatalf("an unplaceable push: exit %d\n%s", code, out)
	}
	out, code = s.exitCode("push", "--name", "nort", "--runtime", "aot", "--dart-aot-runtime", "/nonexistent/dartaotruntime", worker)
	if code != 1 || !strings.Contains(out, "/nonexistent/dartaotruntime does not exist on node") {
		t.Fatalf("a push with a missing runtime: exit %d\n%s", code, out)
	}
	apps := listJSON(t, s)
	for name, want := range map[string]clientsdk.AppState{"good": clientsdk.AppAlive, "bad": clientsdk.AppError, "nowhere": clientsdk.AppDead, "nort": clientsdk.AppError} {
		if apps[name].State != want {
			t.Errorf("list --json: %s is %s (%s), want %s", name, apps[name].State, apps[name].Message, want)
		}
	}
	if in := apps["nowhere"].Instances; len(in) != 1 || in[0].State != clientsdk.StatePending {
		t.Errorf("list --json: nowhere's instance is %+v, want pending", in)
	}

	// A lambda whose runtime is missing: the caller gets the cause
	// (`dartup invoke`, or dartup.lambda.why.NAME for the stock CLI, whose
	// `nats req lambda.nolam` only says "no responders").
	s.dartup("push", "--lambda", "--detach", "--name", "nolam", "--runtime", "aot", "--dart-aot-runtime", "/nonexistent/dart", worker)
	testutil.WaitFor(t, 20*time.Second, "dartup invoke nolam to answer with the start failure", func() bool {
		out, code := s.exitCode("invoke", "nolam")
		return code == 1 && strings.Contains(out, "502") && strings.Contains(out, "/nonexistent/dart does not exist on node")
	})
	why, _ := exec.Command(testutil.NATSCLI(t), "--server", s.natsURL, "req", "dartup.lambda.why.nolam", "").CombinedOutput()
	if !strings.Contains(string(why), "502") || !strings.Contains(string(why), "/nonexistent/dart does not exist on node") {
		t.Fatalf("nats req dartup.lambda.why.nolam printed %s", why)
	}

	// kill and remove wait for a worker that ignores SIGTERM.
	s.dartup("push", "--name", "stubborn", "--kill-timeout", "3s", "--runtime", "command", "--", "/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done")
	pids := procsOf("stubborn")
	if len(pids) == 0 {
		t.Fatal("stubborn does not run")
	}
	s.dartup("kill", "stubborn")
	if left := procsOf("stubborn"); len(left) > 0 {
		t.Fatalf("kill returned while pids %v still ran", left)
	}
	s.dartup("start", "stubborn")
	if len(procsOf("stubborn")) == 0 {
		t.Fatal("start returned before stubborn ran")
	}
	s.dartup("remove", "stubborn")
	if left := procsOf("stubborn"); len(left) > 0 {
		t.Fatalf("remove returned while pids %v still ran", left)
	}
}

// TestLostAndPending kills the only runner node that may run an app (-9):
// its instances are lost (no pid, no uptime) in `list --json`, never
// running, and an app pushed then for the same nodes is pending with the
// reason.
func TestLostAndPending(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	r := startRunnerWith(t, nil, "--server", s.natsURL, "--name", "rb", "--data", testutil.TempDir(t), "--label", "zone=b")
	testutil.WaitFor(t, 20*time.Second, "node rb to join", func() bool {
		out, _ := s.try("nodes", "--json")
		return strings.Contains(out, `"id": "rb"`)
	})
	s.dartup("push", "--name", "tick2", "-j", "2", "--constraint", "zone=b", "--runtime", "command", "--", "/bin/sleep", "1000")
	r.kill9()
	var a clientsdk.AppSummary
	testutil.WaitFor(t, 20*time.Second, "tick2's instances to be lost", func() bool {
		a = listJSON(t, s)["tick2"]
		return len(a.Instances) == 2 && a.Instances[0].State == clientsdk.StateLost && a.Instances[1].State == clientsdk.StateLost
	})
	for _, in := range a.Instances {
		if in.PID != 0 || !in.StartedAt.IsZero() || in.CPUPercent != 0 || in.MemoryBytes != 0 {
			t.Fatalf("a lost instance shows a process: %+v", in)
		}
	}
	if a.Running != 0 || a.State == clientsdk.AppAlive {
		t.Fatalf("tick2 is %s with %d running after its only node died", a.State, a.Running)
	}
	out, code := s.exitCode("push", "--name", "later", "--constraint", "zone=b", "--runtime", "command", "--", "/bin/sleep", "1000")
	if code != 1 || !strings.Contains(out, "pending: no live node matches zone=b") {
		t.Fatalf("push with no live eligible node: exit %d\n%s", code, out)
	}
	var info clientsdk.AppInfo
	if err := json.Unmarshal([]byte(s.dartup("info", "later", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Spec.Version != 1 {
		t.Fatalf("a new app's revision is %d, want 1", info.Spec.Version)
	}
}

// TestRestartRetriesErrored: one rule for errored instances — a restart of
// the node starts every instance afresh, whatever errored it (here a
// command missing on the node, installed meanwhile), as `dartup start` does.
func TestRestartRetriesErrored(t *testing.T) {
	dir := testutil.TempDir(t)
	bin := filepath.Join(testutil.TempDir(t), "late")
	s := startServe(t, dir)
	out, code := s.exitCode("push", "--name", "late", "--runtime", "command", "--", bin)
	if code != 1 || !strings.Contains(out, bin+" does not exist on node") {
		t.Fatalf("push of a missing command: exit %d\n%s", code, out)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.stop()
	s = startServe(t, dir)
	testutil.WaitFor(t, 20*time.Second, "late to run after the restart", func() bool {
		return listJSON(t, s)["late"].State == clientsdk.AppAlive
	})
}

// TestDrainCannotStrandWork drains the only node: refused at once; forced,
// it says on timeout that the node is still draining and how to undo it,
// and its lambdas stay served meanwhile (no other node hosts them).
func TestDrainCannotStrandWork(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	s.dartup("push", "--name", "tick", "--runtime", "command", "--", "/bin/sleep", "1000")
	s.dartup("push", "--lambda", "--name", "echo", "--protocol", "stdio", "--runtime", "command", "--", "/bin/cat")
	var nodes []clientsdk.Node
	if err := json.Unmarshal([]byte(s.dartup("nodes", "--json")), &nodes); err != nil || len(nodes) != 1 {
		t.Fatalf("nodes: %v %+v", err, nodes)
	}
	node := nodes[0].ID
	out, code := s.exitCode("nodes", "drain", node)
	if code != 1 || !strings.Contains(out, "no other live node could take") || !strings.Contains(out, "daemon tick (1 here)") || !strings.Contains(out, "lambda echo") {
		t.Fatalf("drain of the only node: exit %d\n%s", code, out)
	}
	out, code = s.exitCode("nodes", "drain", node, "--force", "--wait", "1s")
	if code != 1 || !strings.Contains(out, "stays draining") || !strings.Contains(out, "dartup nodes undrain "+node) {
		t.Fatalf("forced drain that cannot finish: exit %d\n%s", code, out)
	}
	if got := s.dartup("invoke", "echo"); got != "{}" {
		t.Fatalf("invoke without --data sent %q, want {} (as the AWS CLI)", got)
	}
	if got := s.dartup("invoke", "echo", "--data", "still-served"); !strings.Contains(got, "still-served") {
		t.Fatalf("the lambda of a draining node with no other host: %q", got)
	}
	s.dartup("nodes", "undrain", node)
}
