package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dartup startup prints a unit that runs the given command line (with data
// dirs systemd makes when none is given), refuses flags the command does not
// have, and --install writes it.
func TestStartupUnit(t *testing.T) {
	r := runCLI(t, "", nil, "startup", "serve", "--name", "s1", "--require-password")
	if r.code != 0 {
		t.Fatalf("startup serve: %+v", r)
	}
	for _, want := range []string{" serve --name s1 --require-password --data /var/lib/dartup --work-dir /var/lib/dartup-work\n",
		"StateDirectory=dartup dartup-work\n", "KillMode=mixed\n", "Restart=always\n", "WantedBy=multi-user.target\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the unit lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, "", nil, "startup", "runner", "--server", "nats://10.0.0.1:4222", "--data", "/srv/node")
	if r.code != 0 || !strings.Contains(r.stdout, " runner --server nats://10.0.0.1:4222 --data /srv/node\n") || strings.Contains(r.stdout, "StateDirectory") {
		t.Errorf("startup runner with --data: %+v", r)
	}
	if r := runCLI(t, "", nil, "startup", "serve", "--no-such-flag"); r.code != 2 || !strings.Contains(r.stderr, "unknown flag: --no-such-flag") {
		t.Errorf("startup with a flag serve does not have: %+v", r)
	}
	if r := runCLI(t, "", nil, "startup", "pm2"); r.code != 2 || !strings.Contains(r.stderr, "serve or runner") {
		t.Errorf("startup pm2: %+v", r)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"runner", "--server", "nats://x:4222", "--password", "secret123"}, "DARTUP_PASSWORD"},
		{[]string{"serve", "--name", "x\nExecStartPre=/bin/touch /tmp/pwned"}, "control character"},
		{[]string{"serve", "--data", "rel/dir"}, "--data rel/dir is relative"},
	} {
		r := runCLI(t, "", nil, append([]string{"startup"}, c.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stdout, "secret123") {
			t.Errorf("startup %q: %+v; want exit 2 saying %q", c.args, r, c.want)
		}
	}
	dir := t.TempDir()
	r = runCLI(t, "", nil, "startup", "--install", "--unit-dir", dir, "serve")
	b, err := os.ReadFile(filepath.Join(dir, "dartup.service"))
	if r.code != 0 || err != nil || !strings.Contains(string(b), "ExecStart=") {
		t.Fatalf("startup --install: %+v, %v", r, err)
	}
}
