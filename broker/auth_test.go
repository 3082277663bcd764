package broker_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

// captureLogs makes the broker log everything, debug included, into the
// returned buffer.
func captureLogs(buf *testutil.SyncBuffer) func(*broker.Config) {
	return func(c *broker.Config) {
		c.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	}
}

const (
	alicePW = "correct-horse-battery-7f3a"
	wrongPW = "wrong-guess-0d9e1c"
)

func addUser(t *testing.T, b *broker.Broker, user, pw string) {
	t.Helper()
	if err := broker.SetPassword(filepath.Join(b.DataDir(), broker.PasswordFileName), user, pw); err != nil {
		t.Fatal(err)
	}
}

func natsConnect(url string, opts ...nats.Option) error {
	nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
	if err != nil {
		return err
	}
	nc.Close()
	return nil
}

// httpGet does GET url with optional Basic auth and X-Forwarded-For lines,
// and returns the status and the WWW-Authenticate header.
func httpGet(t *testing.T, url string, user, pw string, xff ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(body)
}

func TestRequirePasswordNATS(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	b := testutil.StartBroker(t, captureLogs(&logs), func(c *broker.Config) { c.RequirePassword = true })
	addUser(t, b, "alice", alicePW)

	if err := natsConnect(b.NATSURL()); err == nil {
		t.Error("a NATS connection without credentials was admitted")
	}
	if err := natsConnect(b.NATSURL(), nats.UserInfo("alice", wrongPW)); err == nil {
		t.Error("a NATS connection with a wrong password was admitted")
	}
	if err := natsConnect(b.NATSURL(), nats.UserInfo("mallory", alicePW)); err == nil {
		t.Error("a NATS connection of an unknown user was admitted")
	}
	if err := natsConnect(b.NATSURL(), nats.Token("not-the-internal-token")); err == nil {
		t.Error("a NATS connection with a made-up token was admitted")
	}
	if err := natsConnect(b.NATSURL(), nats.UserInfo("alice", alicePW)); err != nil {
		t.Errorf("the right password was refused: %v", err)
	}

	ctx := context.Background()
	_, err := clientsdk.Connect(ctx, clientsdk.WithURL(b.NATSURL()), clientsdk.WithUserPassword("alice", wrongPW))
	if !errors.Is(err, clientsdk.ErrAuth) {
		t.Errorf("clientsdk.Connect with a wrong password: %v, want ErrAuth", err)
	} else if strings.Contains(err.Error(), wrongPW) {
		t.Errorf("the error message shows the password: %v", err)
	}
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(b.NATSURL()), clientsdk.WithUserPassword("alice", alicePW))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	si, err := c.Info(ctx)
	if err != nil || !si.RequireAuth {
		t.Errorf("Info as alice = %+v, %v", si, err)
	}

	out := logs.String()
	if !strings.Contains(out, "refused NATS connection") {
		t.Errorf("refusals are not logged; log:\n%s", out)
	}
	for _, pw := range []string{alicePW, wrongPW} {
		if strings.Contains(out, pw) {
			t.Errorf("the server log contains a password:\n%s", out)
		}
	}
}

func TestRequirePasswordHTTP(t *testing.T) {
	t.Parallel()
	var logs testutil.SyncBuffer
	b := testutil.StartBroker(t, captureLogs(&logs), func(c *broker.Config) { c.RequirePassword = true })
	addUser(t, b, "alice", alicePW)
	url := b.HTTPURL() + "/some-lambda"

	for _, tc := range []struct{ name, user, pw string }{
		{"no auth", "", ""},
		{"wrong password", "alice", wrongPW},
		{"unknown user", "bob", alicePW},
	} {
		code, www, body := httpGet(t, url, tc.user, tc.pw)
		if code != 401 || !strings.HasPrefix(www, `Basic realm="dartup"`) {
			t.Errorf("%s: %d, WWW-Authenticate %q; want 401 with a Basic challenge", tc.name, code, www)
		}
		if strings.Contains(body, alicePW) || strings.Contains(body, wrongPW) {
			t.Errorf("%s: the 401 body shows a password: %s", tc.name, body)
		}
	}
	if code, _, body := httpGet(t, url, "alice", alicePW); code != 404 {
		t.Errorf("right password: %d %s; want to get past auth (404: no such lambda)", code, body)
	}
	if code, _, _ := httpGet(t, b.HTTPURL()+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz without auth = %d, want 200 (health checks carry no credentials)", code)
	}
	out := logs.String()
	for _, pw := range []string{alicePW, wrongPW} {
		if strings.Contains(out, pw) {
			t.Errorf("the server log contains a password:\n%s", out)
		}
	}
}

func TestLoopbackNeedsNoPassword(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	addUser(t, b, "alice", alicePW)
	if err := natsConnect(b.NATSURL()); err != nil {
		t.Errorf("loopback NATS without credentials: %v", err)
	}
	if err := natsConnect(b.NATSURL(), nats.UserInfo("alice", wrongPW)); err == nil {
		t.Error("loopback NATS with a WRONG password was admitted; wrong credentials must fail even where none are needed")
	}
	if code, _, _ := httpGet(t, b.HTTPURL()+"/x", "", ""); code != 404 {
		t.Errorf("loopback HTTP without credentials = %d, want 404", code)
	}
}

// lanIP returns a non-loopback IPv4 address of this machine.
func lanIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("SKIPPED: this machine has no non-loopback IPv4 address to test remote clients with")
	return ""
}

func portOf(t *testing.T, url string) string {
	t.Helper()
	i := strings.LastIndexByte(url, ':')
	return url[i+1:]
}

func TestNonLoopbackClientsNeedPassword(t *testing.T) {
	t.Parallel()
	ip := lanIP(t)
	b := testutil.StartBroker(t, func(c *broker.Config) {
		c.NATSAddr, c.HTTPAddr, c.Insecure = "0.0.0.0:0", "0.0.0.0:0", true
	})
	addUser(t, b, "alice", alicePW)
	natsURL := "nats://" + net.JoinHostPort(ip, portOf(t, b.NATSURL()))
	httpURL := "http://" + net.JoinHostPort(ip, portOf(t, b.HTTPURL()))
	if err := natsConnect(natsURL); err == nil {
		t.Error("a NATS client from " + ip + " got in without credentials")
	}
	if err := natsConnect(natsURL, nats.UserInfo("alice", alicePW)); err != nil {
		t.Errorf("a NATS client from %s with the right password: %v", ip, err)
	}
	if code, _, _ := httpGet(t, httpURL+"/x", "", ""); code != 401 {
		t.Errorf("HTTP from %s without credentials = %d, want 401", ip, code)
	}
	if code, _, _ := httpGet(t, httpURL+"/x", "alice", alicePW); code != 404 {
		t.Errorf("HTTP from %s with the right password = %d, want 404", ip, code)
	}
}

// TestClientIPForwardedFor checks, through real HTTP, which client address the
// loopback exemption is judged on: only the last X-Forwarded-For hop counts,
// and only when the direct peer is loopback (a local proxy).
func TestClientIPForwardedFor(t *testing.T) {
	t.Parallel()
	ip := lanIP(t)
	start := func(trust bool) (loop, lan string) {
		b := testutil.StartBroker(t, func(c *broker.Config) {
			c.HTTPAddr, c.Insecure, c.TrustXForwardedFor = "0.0.0.0:0", true, trust
		})
		addUser(t, b, "alice", alicePW)
		p := portOf(t, b.HTTPURL())
		return "http://127.0.0.1:" + p, "http://" + net.JoinHostPort(ip, p)
	}
	trustLoop, trustLAN := start(true)
	plainLoop, plainLAN := start(false)

	cases := []struct {
		name   string
		base   string
		xff    []string
		exempt bool
	}{
		{"loopback peer, no header", trustLoop, nil, true},
		{"loopback proxy for a local client", trustLoop, []string{"127.0.0.1"}, true},
		{"loopback proxy for a remote client", trustLoop, []string{"203.0.113.9"}, false},
		{"spoofed first hop", trustLoop, []string{"127.0.0.1, 203.0.113.9"}, false},
		{"spoofed first hop, no spaces", trustLoop, []string{"127.0.0.1,203.0.113.9"}, false},
		{"remote first hop, local last hop", trustLoop, []string{"203.0.113.9, 127.0.0.1"}, true},
		{"two header lines, spoofed first", trustLoop, []string{"127.0.0.1", "203.0.113.9"}, false},
		{"two header lines, local last", trustLoop, []string{"203.0.113.9", "127.0.0.1"}, true},
		{"ipv6 loopback hop", trustLoop, []string{"::1"}, true},
		{"ipv4-mapped loopback hop", trustLoop, []string{"::ffff:127.0.0.1"}, true},
		{"hop with a port", trustLoop, []string{"203.0.113.9:5555"}, false},
		{"garbage hop", trustLoop, []string{"localhost"}, false},
		{"empty last hop", trustLoop, []string{"127.0.0.1, "}, false},
		{"remote peer claiming loopback", trustLAN, []string{"127.0.0.1"}, false},
		{"remote peer, no header", trustLAN, nil, false},
		{"xff off: loopback peer with a remote hop", plainLoop, []string{"203.0.113.9"}, true},
		{"xff off: remote peer claiming loopback", plainLAN, []string{"127.0.0.1"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := httpGet(t, tc.base+"/x", "", "", tc.xff...)
			if tc.exempt && code != 404 {
				t.Errorf("X-Forwarded-For %q via %s: %d %s; want exempt (404)", tc.xff, tc.base, code, body)
			}
			if !tc.exempt && code != 401 {
				t.Errorf("X-Forwarded-For %q via %s: %d %s; want 401", tc.xff, tc.base, code, body)
			}
			if !tc.exempt {
				if code, _, _ := httpGet(t, tc.base+"/x", "alice", alicePW, tc.xff...); code != 404 {
					t.Errorf("with the right password: %d, want 404", code)
				}
			}
		})
	}
}

func TestPasswordChangesWithoutRestart(t *testing.T) {
	t.Parallel()
	// The polls below try a password that is not valid yet every few ms: a
	// flood by the login limiter's standards, so the test lifts the limits.
	b := testutil.StartBroker(t, func(c *broker.Config) { c.RequirePassword = true }, broker.WithLoginLimits(1000, time.Millisecond))
	path := filepath.Join(b.DataDir(), broker.PasswordFileName)
	if err := natsConnect(b.NATSURL(), nats.UserInfo("carol", alicePW)); err == nil {
		t.Fatal("carol got in before she existed")
	}
	addUser(t, b, "carol", alicePW)
	testutil.WaitFor(t, 5*time.Second, "the running server admits a new user", func() bool {
		return natsConnect(b.NATSURL(), nats.UserInfo("carol", alicePW)) == nil
	})
	testutil.WaitFor(t, 5*time.Second, "HTTP admits the new user", func() bool {
		code, _, _ := httpGet(t, b.HTTPURL()+"/x", "carol", alicePW)
		return code == 404
	})
	// A changed password replaces the old one.
	addUser(t, b, "carol", "a-new-password-11")
	testutil.WaitFor(t, 5*time.Second, "the old password stops working", func() bool {
		return natsConnect(b.NATSURL(), nats.UserInfo("carol", alicePW)) != nil
	})
	if err := broker.DeleteUser(path, "carol"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the running server refuses a deleted user", func() bool {
		return natsConnect(b.NATSURL(), nats.UserInfo("carol", "a-new-password-11")) != nil
	})
	testutil.WaitFor(t, 5*time.Second, "HTTP refuses the deleted user", func() bool {
		code, _, _ := httpGet(t, b.HTTPURL()+"/x", "carol", "a-new-password-11")
		return code == 401
	})
	if err := broker.DeleteUser(path, "carol"); !errors.Is(err, broker.ErrNoSuchUser) {
		t.Errorf("deleting a missing user: %v, want ErrNoSuchUser", err)
	}
}

func TestPasswordFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", broker.PasswordFileName)
	if err := broker.SetPassword(path, "alice", alicePW); err != nil {
		t.Fatal(err)
	}
	if err := broker.SetPassword(path, "bob", wrongPW); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("password file mode = %o, want 600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte(alicePW)) || bytes.Contains(raw, []byte(wrongPW)) {
		t.Fatalf("the password file holds a clear-text password:\n%s", raw)
	}
	if !bytes.Contains(raw, []byte("alice:$2")) || !bytes.Contains(raw, []byte("bob:$2")) {
		t.Errorf("the password file does not hold bcrypt hashes:\n%s", raw)
	}
	p := broker.NewPasswords(path)
	if !p.Verify("alice", alicePW) || !p.Verify("alice", alicePW) || p.Verify("alice", wrongPW) || p.Verify("nobody", alicePW) || p.Users() != 2 {
		t.Error("Verify does not match the file")
	}
	for _, bad := range []string{"", "a b", "a:b", "tab\tname", strings.Repeat("x", 65)} {
		if err := broker.SetPassword(path, bad, "pw"); err == nil {
			t.Errorf("user name %q was accepted", bad)
		}
	}
	if err := broker.SetPassword(path, "carol", ""); err == nil {
		t.Error("an empty password was accepted")
	}
}

// TestSlowPasswordChecksDoNotBreakConnect: a bcrypt check on a busy machine
// can take longer than nats-server's short first PING (2 s after CONNECT);
// the client must still connect, not fail with "expected 'PONG', got 'PING'".
// The hash's cost is chosen so that one check takes about 3 s here.
func TestSlowPasswordChecksDoNotBreakConnect(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t, func(c *broker.Config) { c.RequirePassword = true })
	h, err := bcrypt.GenerateFromPassword([]byte(alicePW), 8)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_ = bcrypt.CompareHashAndPassword(h, []byte(alicePW))
	cost, d := 8, time.Since(t0)
	for d < 3*time.Second && cost < bcrypt.MaxCost {
		cost, d = cost+1, 2*d
	}
	if h, err = bcrypt.GenerateFromPassword([]byte(alicePW), cost); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.DataDir(), broker.PasswordFileName), []byte("alice:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	nc, err := nats.Connect(b.NATSURL(), nats.UserInfo("alice", alicePW), nats.Timeout(60*time.Second))
	if err != nil {
		t.Fatalf("connect with the right password, cost %d, after %s: %v", cost, time.Since(t0).Round(time.Millisecond), err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("connected after %s (bcrypt cost %d)", time.Since(t0).Round(time.Millisecond), cost)
}
