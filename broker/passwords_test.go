package broker_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

// hashLine returns "user:HASH" for password at the lowest bcrypt cost.
func hashLine(t *testing.T, user, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(h)
}

// replaceFile writes data to path atomically, as an editor or a script would.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Secrets that a hand-edited password file may hold; they must never be logged.
const (
	plainSecret = "carol-typed-her-password-here"
	badHash     = "not-a-bcrypt-hash-4411"
)

// TestPasswordFileMalformed: a password file with bad lines does not lock
// everyone out. At start and when it changes at runtime, the bad lines are
// skipped and logged at error level with file and line (never their text);
// the other users keep working; the log does not repeat for the same file;
// and `SetPassword` refuses to rewrite the file (it would drop the lines).
func TestPasswordFileMalformed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, broker.PasswordFileName)
	replaceFile(t, path, strings.Join([]string{
		"# users",
		hashLine(t, "alice", alicePW),
		"bob:" + badHash,
		plainSecret,
		"dave:$2a$04$truncated",
		"",
	}, "\n"))
	var logs testutil.SyncBuffer
	b := testutil.StartBroker(t, captureLogs(&logs), func(c *broker.Config) { c.DataDir, c.RequirePassword = dir, true })

	// The start-up log names every bad line, before any login.
	for _, line := range []string{"line=3", "line=4", "line=5"} {
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), line) {
			t.Errorf("the start-up log does not name %s of %s:\n%s", line, path, logs.String())
		}
	}
	if err := natsConnect(b.NATSURL(), nats.UserInfo("alice", alicePW)); err != nil {
		t.Errorf("alice, on a good line, cannot log in: %v", err)
	}
	if code, _, _ := httpGet(t, b.HTTPURL()+"/x", "alice", alicePW); code != 404 {
		t.Errorf("alice over HTTP: %d", code)
	}
	if err := natsConnect(b.NATSURL(), nats.UserInfo("bob", badHash)); err == nil {
		t.Error("bob, on a bad line, got in")
	}

	// SetPassword does not rewrite a file it cannot read fully.
	before, _ := os.ReadFile(path)
	err := broker.SetPassword(path, "erin", "pw-erin")
	var pfe *broker.PasswordFileError
	if !errors.As(err, &pfe) || pfe.Line != 3 || pfe.Path != path {
		t.Errorf("SetPassword on a bad file: %v, want a *PasswordFileError for line 3", err)
	}
	if err := broker.DeleteUser(path, "alice"); !errors.As(err, &pfe) {
		t.Errorf("DeleteUser on a bad file: %v, want a *PasswordFileError", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("a refused SetPassword or DeleteUser changed the file")
	}

	// At runtime: the file changes and gets a new bad line 3; frank (line 4)
	// is new. Both are picked up, loudly.
	replaceFile(t, path, hashLine(t, "alice", alicePW)+"\n# comment\nerin:"+badHash+"\n"+hashLine(t, "frank", "pw-frank")+"\n")
	testutil.WaitFor(t, 10*time.Second, "the running server to admit frank from the changed file", func() bool {
		return natsConnect(b.NATSURL(), nats.UserInfo("frank", "pw-frank")) == nil
	})
	if !strings.Contains(logs.String(), "line=3") || strings.Count(logs.String(), "skipping a line") != 4 {
		t.Errorf("the changed file's bad line 3 is not logged once:\n%s", logs.String())
	}
	if err := natsConnect(b.NATSURL(), nats.UserInfo("alice", alicePW)); err != nil {
		t.Errorf("alice after the change: %v", err)
	}
	// The same file, checked again and again: no second log line.
	t0 := time.Now()
	testutil.WaitFor(t, 10*time.Second, "three re-reads of an unchanged file", func() bool {
		httpGet(t, b.HTTPURL()+"/x", "alice", alicePW)
		return time.Since(t0) > 800*time.Millisecond
	})
	out := logs.String()
	if n := strings.Count(out, "skipping a line"); n != 4 {
		t.Errorf("%d skipped-line messages, want 4 (3 at start, 1 after the change):\n%s", n, out)
	}
	for _, secret := range []string{plainSecret, badHash, alicePW} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows the text of a line (%q):\n%s", secret, out)
		}
	}
}

// TestPasswordFileUnreadable: a file that cannot be read (here: a symlink
// to itself, which root cannot read either) keeps the users read before, and
// says so once.
func TestPasswordFileUnreadable(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	b := testutil.StartBroker(t, captureLogs(&logs), func(c *broker.Config) { c.RequirePassword = true })
	addUser(t, b, "alice", alicePW)
	path := filepath.Join(b.DataDir(), broker.PasswordFileName)
	testutil.WaitFor(t, 10*time.Second, "alice to log in", func() bool {
		return natsConnect(b.NATSURL(), nats.UserInfo("alice", alicePW)) == nil
	})
	// Atomically replace the file with a symlink to itself: stat fails (ELOOP).
	if err := os.Symlink(broker.PasswordFileName, path+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the unreadable file to be logged", func() bool {
		httpGet(t, b.HTTPURL()+"/x", "alice", alicePW)
		return strings.Contains(logs.String(), "cannot read the password file")
	})
	if code, _, _ := httpGet(t, b.HTTPURL()+"/x", "alice", alicePW); code != 404 {
		t.Errorf("alice after the file became unreadable: %d", code)
	}
	if n := strings.Count(logs.String(), "cannot read the password file"); n != 1 {
		t.Errorf("the unreadable file was logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestSetPasswordConcurrent: concurrent writers in one process (each takes
// the lock on its own open file) lose nothing either.
func TestSetPasswordConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), broker.PasswordFileName)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := broker.SetPassword(path, fmt.Sprintf("u%d", i), "pw"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := broker.NewPasswords(path).Users(); n != 10 {
		t.Errorf("%d users after 10 concurrent SetPassword, want 10", n)
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Errorf("no lock file next to the password file: %v", err)
	}
}

func TestPasswordFileEdgeCases(t *testing.T) {
	for user, ok := range map[string]bool{"alice": true, "bob.smith@corp": true, "ünïcode": true, "#root": false,
		"nb\u00a0sp": false, "nel\u0085": false, "bad\xff": false, "a:b": false, "": false} {
		if err := broker.ValidateUser(user); (err == nil) != ok {
			t.Errorf("ValidateUser(%q) = %v, want ok=%v", user, err, ok)
		}
	}
	path := filepath.Join(t.TempDir(), broker.PasswordFileName)
	if err := broker.SetPassword(path, "alice", strings.Repeat("p", broker.MaxPasswordBytes+1)); !errors.Is(err, broker.ErrPasswordTooLong) {
		t.Fatalf("a 73-byte password: %v", err)
	}
	if err := broker.SetPassword(path, "alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	if err := broker.SetPassword(path, "bob", "bob-pw"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	b = b[bytes.IndexByte(b, '\n')+1:] // without the comment line: the first line is alice's
	for name, content := range map[string][]byte{
		"a BOM":             append([]byte("\xef\xbb\xbf"), b...),
		"CR line endings":   bytes.ReplaceAll(b, []byte("\n"), []byte("\r")),
		"CRLF line endings": bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")),
	} {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		p := broker.NewPasswords(path)
		if !p.Verify("alice", "alice-pw") || !p.Verify("bob", "bob-pw") {
			t.Errorf("with %s, a user cannot log in", name)
		}
	}
}
