package main

import (
	"strings"
	"testing"

	"github.com/dartup/dartup/internal/testutil"
)

// Shell completion offers the server's app names for commands that take
// NAME, the values of enumerated flags, and nothing, quietly, when no
// server answers.
func TestCompletion(t *testing.T) {
	p := startServeLocal(t, testutil.TempDir(t), "--no-runner")
	env := []string{"DARTUP_URL=" + p.ready.NATSURL}
	for _, app := range []string{"alpha", "beta"} {
		if r := runCLI(t, "", env, "push", "--lambda", "--name", app, "--runtime", "command", "--", "/bin/true"); r.code != 0 && !strings.Contains(r.stderr, "pending") {
			t.Fatalf("push %s: %+v", app, r)
		}
	}
	r := runCLI(t, "", env, "__complete", "info", "a")
	if !strings.Contains(r.stdout, "alpha\n") || strings.Contains(r.stdout, "beta") {
		t.Fatalf("completing `info a`: %q", r.stdout)
	}
	r = runCLI(t, "", env, "__complete", "kill", "alpha", "")
	if lines := strings.Fields(r.stdout); len(lines) == 0 || lines[0] != "beta" || strings.Contains(r.stdout, "alpha\n") {
		t.Fatalf("completing `kill alpha ` offered %q, want beta only", r.stdout)
	}
	if r := runCLI(t, "", nil, "__complete", "push", "--protocol", ""); !strings.Contains(r.stdout, "stdio\n") {
		t.Fatalf("completing --protocol: %q", r.stdout)
	}
	r = runCLI(t, "", []string{"DARTUP_URL=nats://127.0.0.1:1"}, "__complete", "info", "")
	if r.code != 0 || strings.TrimSpace(r.stdout) != ":4" || strings.Contains(strings.ToLower(r.stderr), "error") {
		t.Fatalf("completion without a server: exit %d, %q, %q; want nothing offered, quietly", r.code, r.stdout, r.stderr)
	}
}
