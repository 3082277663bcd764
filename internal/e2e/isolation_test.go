package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
)

// spyScript tries, as an app, everything the adversarial review did with the
// server's uid: read and extend the password file (by absolute and by
// relative path), read the JetStream store, and read other workers'
// environment (their NATS_TOKEN). It prints what it could do.
const spyScript = `
cat "$DATA/passwords" && echo LEAK-passwords-read
echo 'evil:$2a$10$0000000000000000000000000000000000000000000000000000' >> "$DATA/passwords" && echo LEAK-passwords-written
echo 'evil:x' >> "../../$(basename "$DATA")/passwords" && echo LEAK-passwords-written-relative
ls "$DATA/jetstream" && echo LEAK-jetstream-listed
for f in /proc/[0-9]*/environ; do
  if tr '\0' '\n' < "$f" 2>/dev/null | grep -q '^DARTUP_APP=victim$'; then echo "LEAK-environ $f"; fi
done
env | grep -q 'adm1n-pw\|secretproxy' && echo LEAK-runner-credentials
echo SPY-DONE uid=$(id -u)
exec sleep 1000
`

// TestWorkersAreIsolated runs dartup as root, the way its systemd unit does,
// and an app that tries to take the server over through the file system
// and /proc: every attempt is refused, because each app runs as its own
// unprivileged user outside the data dir. The runner's own credentials
// (DARTUP_URL with a password, a proxy URL with one) reach no worker.
func TestWorkersAreIsolated(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "isolation of apps from each other needs dartup to run as root")
	}
	dir := testutil.TempDir(t)
	const pw = "adm1n-pw"
	setPassword(t, dir, "admin", pw)
	t.Setenv("DARTUP_URL", "nats://admin:"+pw+"@127.0.0.1:4222")
	t.Setenv("DARTUP_PASSWORD", pw)
	t.Setenv("HTTPS_PROXY", "http://user:secretproxy@proxy.invalid:3128")
	s := startServe(t, dir, "--require-password")
	s.env = []string{"DARTUP_USER=admin", "DARTUP_PASSWORD=" + pw}
	before := fileSum(t, filepath.Join(dir, "passwords"))

	s.dartup("push", "--name", "victim", "--runtime", "command", "--", "/bin/sleep", "1000")
	waitListed(t, s, "victim", "alive")
	s.dartup("push", "--name", "spy", "--env", "DATA="+dir, "--runtime", "command", "--", "/bin/sh", "-c", spyScript)
	s.dartup("push", "--lambda", "--name", "envl", "--protocol", "stdio", "--runtime", "command", "--", "/usr/bin/env")

	var logs string
	testutil.WaitFor(t, 20*time.Second, "the spy to finish", func() bool {
		logs, _ = s.try("logs", "spy", "--lines", "100")
		return strings.Contains(logs, "SPY-DONE")
	})
	if strings.Contains(logs, "LEAK") || strings.Contains(logs, "SPY-DONE uid=0") {
		t.Fatalf("an app reached the server's files or another app's environment:\n%s", logs)
	}
	for _, want := range []string{"Permission denied"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the spy's attempts did not fail as expected (%q missing):\n%s", want, logs)
		}
	}
	if after := fileSum(t, filepath.Join(dir, "passwords")); after != before {
		t.Fatal("the password file changed")
	}
	env := s.dartup("invoke", "envl")
	for _, secret := range []string{pw, "secretproxy", "DARTUP_URL", "DARTUP_PASSWORD"} {
		if strings.Contains(env, secret) {
			t.Errorf("a lambda worker's environment holds %q:\n%s", secret, env)
		}
	}
	for _, want := range []string{"NATS_TOKEN=dartup-worker.envl.", "DARTUP_APP=envl", "NATS_INBOX_PREFIX=_INBOX_APP.envl"} {
		if !strings.Contains(env, want) {
			t.Errorf("a lambda worker's environment lacks %q:\n%s", want, env)
		}
	}
	// Each app has a user of its own, none of them root.
	uids := map[uint32]string{}
	for _, app := range []string{"victim", "spy"} {
		for _, pid := range procsOf(app) {
			st, err := os.Stat("/proc/" + strconv.Itoa(pid))
			if err != nil {
				continue
			}
			uid := st.Sys().(*syscall.Stat_t).Uid
			if uid == 0 || uids[uid] != "" && uids[uid] != app {
				t.Fatalf("app %s runs as uid %d (also %q)", app, uid, uids[uid])
			}
			uids[uid] = app
		}
	}
	if len(uids) != 2 {
		t.Fatalf("want two app users, got %v", uids)
	}
}

// TestSharedUserIsSaidAndCanBeRefused runs dartup as an ordinary user: it
// says at start that apps share its user, and refuses to start with
// --isolation required.
func TestSharedUserIsSaidAndCanBeRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("this test switches to an ordinary user, which needs root")
	}
	const uid = 59990
	home := testutil.TempDir(t)
	if err := os.Chown(home, uid, uid); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) *exec.Cmd {
		cmd := exec.Command(testutil.Dartup(t), append([]string{"serve", "--data", filepath.Join(home, "data"), "--nats-addr", "127.0.0.1:0", "-p", "0"}, args...)...)
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}, Setpgid: true}
		return cmd
	}
	out, err := run("--isolation", "required").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "only root can give apps users of their own") {
		t.Fatalf("--isolation required as an ordinary user: %v (want exit 2)\n%s", err, out)
	}
	cmd := run()
	var log testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	testutil.WaitFor(t, 20*time.Second, "the warning that apps share dartup's user", func() bool {
		return strings.Contains(log.String(), "apps run as dartup's own user")
	})
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(bytes.TrimSpace(b))
}

// TestAppsGetNoLocalExemption: without --require-password, local clients
// need no password, but an app is not a local user of the server: its
// anonymous connection to the control API (the real `nats` CLI, run as the
// app) is refused, while the operator's CLI works as before.
func TestAppsGetNoLocalExemption(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.SkipOrFail(t, "apps have users of their own only when dartup runs as root")
	}
	s := startServe(t, testutil.TempDir(t))
	natsCLI := testutil.NATSCLI(t)
	s.dartup("push", "--name", "sneaky", "--runtime", "command", "--", "/bin/sh", "-c",
		"env -u NATS_TOKEN "+natsCLI+" --server "+s.natsURL+" req dartup.api.list '{}'; echo EXIT=$?; exec sleep 1000")
	var logs string
	testutil.WaitFor(t, 20*time.Second, "the app's nats CLI to finish", func() bool {
		logs, _ = s.try("logs", "sneaky", "--lines", "50")
		return strings.Contains(logs, "EXIT=")
	})
	if strings.Contains(logs, `"apps"`) || !strings.Contains(strings.ToLower(logs), "authorization violation") {
		t.Fatalf("an app used the control API without credentials:\n%s", logs)
	}
	if out := s.dartup("list"); !strings.Contains(out, " • sneaky - alive") {
		t.Fatalf("the operator's CLI: %s", out)
	}
}
