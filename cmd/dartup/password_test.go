package main

import (
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
)

// TestPasswordConcurrentProcesses: ten `dartup password` processes started at
// once, each adding its own user to the same data dir, leave all ten users in
// the file (the read-modify-write is locked across processes).
func TestPasswordConcurrentProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 10
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runCLI(t, fmt.Sprintf("pw-of-user%d\n", i), nil, "password", "--password-stdin", fmt.Sprintf("user%d", i), "--data", dir)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("dartup password user%d: %+v", i, r)
		}
	}
	p := broker.NewPasswords(filepath.Join(dir, broker.PasswordFileName))
	if got := p.Users(); got != n {
		raw, _ := os.ReadFile(p.Path())
		t.Fatalf("%d users in the file after %d concurrent `dartup password`, want %d:\n%s", got, n, n, raw)
	}
	for i := range n {
		if !p.Verify(fmt.Sprintf("user%d", i), fmt.Sprintf("pw-of-user%d", i)) {
			t.Errorf("user%d's password does not verify", i)
		}
	}
}

// TestServeMalformedPasswordFile: `dartup serve` on a password file with bad
// lines starts, names the file and each bad line in its log (never the
// line's text), and admits the users on the good lines; a line that goes bad
// while it runs is logged too; `dartup password` refuses to rewrite the file.
func TestServeMalformedPasswordFile(t *testing.T) {
	t.Parallel()
	const alicePW, typedSecret = "alice-pw-1c9e", "bob-typed-this-in-3f0a"
	dir := testutil.TempDir(t)
	if r := runCLI(t, alicePW+"\n", nil, "password", "--password-stdin", "alice", "--data", dir); r.code != 0 {
		t.Fatalf("dartup password alice: %+v", r)
	}
	path := filepath.Join(dir, broker.PasswordFileName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Line 1 is the header comment, line 2 alice.
	if err := os.WriteFile(path, append(good, []byte(typedSecret+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServeLocal(t, dir, "--require-password")
	if out := p.out.String(); !strings.Contains(out, path) || !strings.Contains(out, "line=3") || !strings.Contains(out, "level=ERROR") {
		t.Errorf("serve's start-up log does not name %s line 3:\n%s", path, out)
	}
	env := []string{"DARTUP_URL=" + p.ready.NATSURL, "DARTUP_USER=alice", "DARTUP_PASSWORD=" + alicePW}
	if r := runCLI(t, "", env, "info"); r.code != 0 {
		t.Errorf("alice cannot log in next to a bad line: %+v", r)
	}

	r := runCLI(t, "carol-pw-123\n", nil, "password", "--password-stdin", "carol", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stderr, path+" line 3") {
		t.Errorf("dartup password on a bad file: %+v; want exit 1 naming %s line 3", r, path)
	}

	// At runtime: a second bad line (4) appears.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, append(good, []byte(typedSecret+"\nbob:$2a$10$cut\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the running server to log the new bad line 4", func() bool {
		if strings.Contains(p.out.String(), "line=4") {
			return true
		}
		runCLI(t, "", env, "info") // the file is re-read on a login
		return false
	})
	if r := runCLI(t, "", env, "info"); r.code != 0 {
		t.Errorf("alice after the file changed: %+v", r)
	}
	if code := p.stop(); code != 0 {
		t.Errorf("SIGTERM: exit %d", code)
	}
	if strings.Contains(p.out.String(), typedSecret) || strings.Contains(p.out.String(), alicePW) {
		t.Errorf("the server log shows a secret:\n%s", p.out.String())
	}
}

// A password shorter than 8 characters is refused unless --allow-weak.
func TestShortPasswordRefused(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, "seven77\n", nil, "password", "--password-stdin", "dave", "--data", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "use at least 8") || !strings.Contains(r.stderr, "--allow-weak") {
		t.Fatalf("a 7-character password: %+v; want exit 2 saying at least 8 and --allow-weak", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "passwords")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused password was written: %v", err)
	}
	if r := runCLI(t, "seven77\n", nil, "password", "--password-stdin", "--allow-weak", "dave", "--data", dir); r.code != 0 {
		t.Fatalf("--allow-weak: %+v", r)
	}
}

// A folder that is not a dartup data dir (no server reads a password file
// there) is refused.
func TestPasswordRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "long-enough-pw\n", nil, "password", "--password-stdin", "erin", "--data", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "is not a dartup data dir") {
		t.Fatalf("password into a foreign folder: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "passwords")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a password file was written into a foreign folder")
	}
}
