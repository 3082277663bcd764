package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/internal/testutil"
)

// TestContextFromNATSCLI: contexts saved by the real `nats context save`
// connect `dartup --context NAME` to a server that requires a password;
// a wrong password is refused; a user given by flag or environment wins
// over the context's (also over one in its URL, which nats.go would send
// instead); a setting dartup cannot honour is refused by name.
func TestContextFromNATSCLI(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t, func(c *broker.Config) { c.RequirePassword = true })
	if err := broker.SetPassword(filepath.Join(b.DataDir(), broker.PasswordFileName), "alice", "right-pw"); err != nil {
		t.Fatal(err)
	}
	xdg := t.TempDir()
	env := []string{"XDG_CONFIG_HOME=" + xdg}
	natsBin := testutil.NATSCLI(t)
	save := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(natsBin, append([]string{"context", "save", name, "--server", b.NATSURL()}, args...)...)
		cmd.Env = append(cleanEnv(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nats context save %s: %v\n%s", name, err, out)
		}
	}
	save("good", "--user", "alice", "--password", "right-pw")
	save("bad", "--user", "alice", "--password", "wrong-pw")
	save("proxied", "--user", "alice", "--password", "right-pw", "--socks-proxy", "socks5://127.0.0.1:1")
	if err := os.WriteFile(filepath.Join(xdg, "nats", "context", "web.json"), []byte(`{"url": "http://127.0.0.1:2374"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	inURL := strings.Replace(b.NATSURL(), "nats://", "nats://alice:right-pw@", 1)
	if err := os.WriteFile(filepath.Join(xdg, "nats", "context", "in-url.json"), []byte(`{"url": "`+inURL+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		says string // in stdout for exit 0, else in stderr
	}{
		{"context's password", nil, []string{"--context", "good"}, 0, "No active applications."},
		{"wrong password", nil, []string{"--context", "bad"}, 1, "refused the credentials"},
		{"env user wins", []string{"DARTUP_USER=alice", "DARTUP_PASSWORD=right-pw"}, []string{"--context", "bad"}, 0, "No active applications."},
		{"flag user wins", nil, []string{"--context", "good", "--user", "alice", "--password", "wrong-pw"}, 1, "refused the credentials"},
		{"password in the context's URL", nil, []string{"--context", "in-url"}, 0, "No active applications."},
		{"flag user wins over the context's URL", nil, []string{"--context", "in-url", "--user", "alice", "--password", "wrong-pw"}, 1, "refused the credentials"},
		{"env user wins over the context's URL", []string{"DARTUP_USER=alice", "DARTUP_PASSWORD=wrong-pw"}, []string{"--context", "in-url"}, 1, "refused the credentials"},
		{"socks proxy", nil, []string{"--context", "proxied"}, 2, `"socks_proxy"`},
		{"an HTTP URL", nil, []string{"--context", "web"}, 2, "is an HTTP URL"},
		{"traversal", nil, []string{"--context", "../good"}, 2, "invalid context name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, "", append(append([]string{}, env...), tc.env...), append([]string{"list", "--connect-timeout", "10s"}, tc.args...)...)
			out := r.stderr
			if tc.code == 0 {
				out = r.stdout
			}
			if r.code != tc.code || !strings.Contains(out, tc.says) {
				t.Errorf("dartup list %s: exit %d, want %d saying %q\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), r.code, tc.code, tc.says, r.stdout, r.stderr)
			}
		})
	}
}

// TestContextTLSFiles: the context's CA, written with a leading ~, verifies
// a TLS server; --tls-ca wins over the context's (which is then not read).
func TestContextTLSFiles(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t, func(c *broker.Config) { c.HTTPAddr, c.RequirePassword, c.TLS.SelfSigned = "", true, true })
	if err := broker.SetPassword(filepath.Join(b.DataDir(), broker.PasswordFileName), "alice", "right-pw"); err != nil {
		t.Fatal(err)
	}
	home, xdg := t.TempDir(), t.TempDir()
	ca, err := os.ReadFile(b.SelfSignedCA())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "ca.pem"), ca, 0o600); err != nil {
		t.Fatal(err)
	}
	other := testutil.NewPKI(t, "not the server's CA")
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + xdg}
	natsBin := testutil.NATSCLI(t)
	// `nats context save` wants the CA to exist and writes its path as
	// given; a ~ is what people write with `nats context edit`.
	for name, edit := range map[string]string{"home-ca": "~/ca.pem", "other-ca": other.CAFile, "missing-ca": "~/missing.pem"} {
		mine := filepath.Join(home, "ca.pem")
		cmd := exec.Command(natsBin, "context", "save", name, "--server", b.NATSURL(), "--user", "alice", "--password", "right-pw", "--tlsca", mine)
		cmd.Env = append(cleanEnv(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nats context save %s: %v\n%s", name, err, out)
		}
		file := filepath.Join(xdg, "nats", "context", name+".json")
		js, err := os.ReadFile(file)
		if err != nil || !strings.Contains(string(js), `"ca": "`+mine+`"`) {
			t.Fatalf("%s: %v\n%s", file, err, js)
		}
		if err := os.WriteFile(file, []byte(strings.Replace(string(js), mine, edit, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--context", "home-ca"}, 0, "No active applications."},
		{[]string{"--context", "other-ca"}, 1, "not trusted"},
		{[]string{"--context", "missing-ca", "--tls-ca", b.SelfSignedCA()}, 0, "No active applications."},
		{[]string{"--context", "missing-ca"}, 1, "missing.pem"},
	}
	for _, tc := range cases {
		r := runCLI(t, "", env, append([]string{"list", "--connect-timeout", "10s"}, tc.args...)...)
		out := r.stderr
		if tc.code == 0 {
			out = r.stdout
		}
		if r.code != tc.code || !strings.Contains(out, tc.says) {
			t.Errorf("dartup list %s: exit %d, want %d saying %q\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), r.code, tc.code, tc.says, r.stdout, r.stderr)
		}
	}
}
