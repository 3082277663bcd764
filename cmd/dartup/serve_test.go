package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func streamsOf(t *testing.T, url string) []string {
	t.Helper()
	nc := testutil.Connect(t, url)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var names []string
	l := js.StreamNames(ctx)
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// TestServeLifecycle runs `dartup serve` as a child process: it becomes ready,
// the real `nats` CLI and the dartup CLI talk to it, a second serve on the
// same data dir is refused, SIGTERM stops it cleanly, and a restart on the
// same dir finds the same state.
func TestServeLifecycle(t *testing.T) {
	t.Parallel()
	dir := testutil.TempDir(t)
	p := startServeLocal(t, dir)
	url := p.ready.NATSURL
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || !strings.HasPrefix(p.ready.HTTPURL, "http://127.0.0.1:") {
		t.Fatalf("ready file = %+v", p.ready)
	}
	if st, err := os.Stat(filepath.Join(dir, ReadyFileName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ready file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if c := httpStatus(t, p.ready.HTTPURL+"/healthz"); c != 200 {
		t.Errorf("/healthz = %d", c)
	}

	t.Run("nats micro", func(t *testing.T) {
		out, err := natsCLI(t, "--server", url, "micro", "ls")
		if err != nil || !strings.Contains(out, clientsdk.ServiceName) {
			t.Errorf("nats micro ls: %v\n%s", err, out)
		}
		out, err = natsCLI(t, "--server", url, "micro", "info", clientsdk.ServiceName)
		if err != nil {
			t.Fatalf("nats micro info dartup: %v\n%s", err, out)
		}
		for _, want := range []string{clientsdk.ServiceName, clientsdk.APISubject(clientsdk.VerbList), clientsdk.APISubject(clientsdk.VerbInfo), dir} {
			if !strings.Contains(out, want) {
				t.Errorf("nats micro info dartup does not show %q:\n%s", want, out)
			}
		}
		out, err = natsCLI(t, "--server", url, "micro", "stats", clientsdk.ServiceName)
		if err != nil || !strings.Contains(out, clientsdk.ServiceName) {
			t.Errorf("nats micro stats dartup: %v\n%s", err, out)
		}
		// A raw request with the nats CLI shows the service error of a bad one.
		out, _ = natsCLI(t, "--server", url, "request", clientsdk.APISubject(clientsdk.VerbDescribe), "{not json")
		if !strings.Contains(out, "400") {
			t.Errorf("nats request with a malformed body does not show the 400:\n%s", out)
		}
	})

	t.Run("dartup info", func(t *testing.T) {
		r := runCLI(t, "", nil, "info", "-s", url)
		if r.code != 0 || !strings.Contains(r.stdout, dir) || !strings.Contains(r.stdout, "JetStream") {
			t.Errorf("dartup info: %+v", r)
		}
		r = runCLI(t, "", []string{"DARTUP_URL=" + url}, "info", "--json")
		var si clientsdk.ServerInfo
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &si) != nil {
			t.Fatalf("dartup info --json: %+v", r)
		}
		if si.DataDir != dir || si.NATSURL != url || si.HTTPURL != p.ready.HTTPURL || si.NodeID == "" || si.JetStream.Streams < 7 {
			t.Errorf("dartup info --json = %+v", si)
		}
	})

	t.Run("dartup list", func(t *testing.T) {
		r := runCLI(t, "", nil, "list", "-s", url)
		if r.code != 0 || r.stdout != "No active applications.\n" {
			t.Errorf("dartup list: %+v", r)
		}
		r = runCLI(t, "", nil, "list", "--json", "-s", url)
		var apps []clientsdk.AppSummary
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &apps) != nil || len(apps) != 0 || strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("dartup list --json: %+v", r)
		}
	})

	// Something to find after the restart.
	nc := testutil.Connect(t, url)
	js, _ := jetstream.New(nc)
	probe := clientsdk.LogSubject("probe", 0, "out")
	if _, err := js.Publish(context.Background(), probe, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	streams := streamsOf(t, url)

	t.Run("second serve on the same data dir", func(t *testing.T) {
		p2 := startServe(t, dir, "--nats-addr", "127.0.0.1:0", "-p", "0")
		code := p2.wait(30 * time.Second)
		out := p2.out.String()
		if code == 0 {
			t.Errorf("second serve exited 0:\n%s", out)
		}
		if !strings.Contains(out, "pid "+strconv.Itoa(p.cmd.Process.Pid)) || !strings.Contains(out, dir) {
			t.Errorf("second serve's error does not name the data dir and the first one's pid %d:\n%s", p.cmd.Process.Pid, out)
		}
		if !p.running() || httpStatus(t, p.ready.HTTPURL+"/healthz") != 200 {
			t.Fatal("the first serve is not healthy after the second one tried")
		}
		if r := runCLI(t, "", nil, "info", "-s", url); r.code != 0 {
			t.Errorf("dartup info against the first serve: %+v", r)
		}
		b, err := os.ReadFile(filepath.Join(dir, ReadyFileName))
		var rf readyFile
		if err != nil || json.Unmarshal(b, &rf) != nil || rf.PID != p.cmd.Process.Pid {
			t.Errorf("the second serve touched the ready file: %s %v", b, err)
		}
	})

	if code := p.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0\n%s", code, p.out.String())
	}
	if !strings.Contains(p.out.String(), "stopped cleanly") {
		t.Errorf("no clean-stop message:\n%s", p.out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Fatalf("the data dir lost its jetstream store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ReadyFileName)); !os.IsNotExist(err) {
		t.Errorf("the ready file is still there after a clean stop: %v", err)
	}

	p3 := startServeLocal(t, dir)
	if got := streamsOf(t, p3.ready.NATSURL); !slices.Equal(got, streams) {
		t.Errorf("streams after restart = %v, before = %v", got, streams)
	}
	nc = testutil.Connect(t, p3.ready.NATSURL)
	js, _ = jetstream.New(nc)
	s, err := js.Stream(context.Background(), clientsdk.LogsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), probe)
	if err != nil || string(m.Data) != "still here" {
		t.Errorf("message stored before the restart: %v, %v", m, err)
	}
	nc.Close()
	if code := p3.stop(); code != 0 {
		t.Fatalf("restarted serve: SIGTERM exit %d\n%s", code, p3.out.String())
	}
}

// TestServeRefusesNonLoopback: without --require-password, or with it but
// without TLS, serve refuses to listen beyond loopback (exit 2, a clear
// message) unless --insecure.
func TestServeRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-a", "0.0.0.0", "-p", "0", "--nats-addr", "127.0.0.1:0"},
		{"-p", "0", "--nats-addr", "0.0.0.0:0"},
		{"-a", "::", "-p", "0", "--nats-addr", "127.0.0.1:0"},
		{"-p", "0", "--nats-addr", ":0"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(testutil.TempDir(t), "data")
			r := runCLI(t, "", nil, append([]string{"serve", "--data", dir}, args...)...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "--require-password") || !strings.Contains(r.stderr, "--insecure") || strings.Contains(r.stderr, "panic") {
				t.Errorf("message does not say what to do:\n%s", r.stderr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a refused serve created its data dir: %v", err)
			}
		})
	}
	// With passwords but without TLS, passwords would cross the network in clear.
	r := runCLI(t, "", nil, "serve", "--data", testutil.TempDir(t), "--require-password", "-a", "0.0.0.0", "-p", "0", "--nats-addr", "0.0.0.0:0")
	if r.code != 2 || !strings.Contains(r.stderr, "--tls-self-signed") || !strings.Contains(r.stderr, "--insecure") {
		t.Errorf("serve --require-password on 0.0.0.0 without TLS: exit %d\n%s", r.code, r.stderr)
	}
	for _, extra := range [][]string{{"--insecure"}, {"--require-password", "--tls-self-signed"}} {
		t.Run("0.0.0.0 with "+strings.Join(extra, " "), func(t *testing.T) {
			t.Parallel()
			p := startServe(t, testutil.TempDir(t), append([]string{"-a", "0.0.0.0", "-p", "0", "--nats-addr", "0.0.0.0:0"}, extra...)...)
			p.waitReady()
			hc := http.DefaultClient
			if p.ready.TLSCA != "" {
				hc = testutil.HTTPSClient(t, p.ready.TLSCA, "", "")
			}
			// The URL names the unspecified address, which no certificate carries.
			u, _ := url.Parse(p.ready.HTTPURL)
			u.Host = net.JoinHostPort("127.0.0.1", u.Port())
			if resp, err := hc.Get(u.String() + "/healthz"); err != nil || resp.StatusCode != 200 {
				t.Errorf("/healthz: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}
			if code := p.stop(); code != 0 {
				t.Errorf("SIGTERM: exit %d", code)
			}
		})
	}
}

// TestServeRequirePassword drives auth end to end with the real binaries:
// users written by `dartup password` (the real bcrypt cost), NATS via the dartup
// and nats CLIs, HTTP Basic auth, changes picked up while running, and no
// password in any output.
func TestServeRequirePassword(t *testing.T) {
	t.Parallel()
	const alicePW, bobPW, wrongPW = "alice-pw-5b1f0e", "bob-pw-77c2aa", "wrong-pw-0913dd"
	dir := testutil.TempDir(t)
	r := runCLI(t, alicePW+"\n", nil, "password", "--password-stdin", "alice", "--data", dir)
	pwFile := filepath.Join(dir, "passwords")
	if r.code != 0 || !strings.Contains(r.stdout, pwFile) {
		t.Fatalf("dartup password: %+v", r)
	}
	if st, err := os.Stat(pwFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v mode %v, want 0600", err, st.Mode().Perm())
	}
	p := startServeLocal(t, dir, "--require-password", "-v")
	url := p.ready.NATSURL
	var outputs []string

	as := func(user, pw string, args ...string) result {
		env := []string{"DARTUP_URL=" + url}
		if user != "" {
			env = append(env, "DARTUP_USER="+user, "DARTUP_PASSWORD="+pw)
		}
		r := runCLI(t, "", env, args...)
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}
	if r := as("", "", "info"); r.code == 0 || !strings.Contains(r.stderr, "credentials") {
		t.Errorf("info without a password: %+v", r)
	}
	if r := as("alice", wrongPW, "info"); r.code != 1 || !strings.Contains(r.stderr, "refused") {
		t.Errorf("info with a wrong password: %+v", r)
	}
	if r := as("alice", alicePW, "info"); r.code != 0 || !strings.Contains(r.stdout, "require password:  true") {
		t.Errorf("info as alice: %+v", r)
	}
	if r := as("alice", alicePW, "list"); r.code != 0 || r.stdout != "No active applications.\n" {
		t.Errorf("list as alice: %+v", r)
	}

	out, err := natsCLI(t, "--server", url, "micro", "info", clientsdk.ServiceName)
	outputs = append(outputs, out)
	if err == nil {
		t.Errorf("nats micro info without a password worked:\n%s", out)
	}
	out, err = natsCLI(t, "--server", url, "--user", "alice", "--password", wrongPW, "micro", "ls")
	outputs = append(outputs, out)
	if err == nil {
		t.Errorf("nats micro ls with a wrong password worked:\n%s", out)
	}
	out, err = natsCLI(t, "--server", url, "--user", "alice", "--password", alicePW, "micro", "info", clientsdk.ServiceName)
	if err != nil || !strings.Contains(out, clientsdk.APISubject(clientsdk.VerbInfo)) {
		t.Errorf("nats micro info as alice: %v\n%s", err, out)
	}

	get := func(user, pw string) (int, string) {
		req, _ := http.NewRequest("GET", p.ready.HTTPURL+"/somelambda", nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
	}
	if code, www := get("", ""); code != 401 || !strings.HasPrefix(www, "Basic ") {
		t.Errorf("HTTP without auth: %d %q", code, www)
	}
	if code, www := get("alice", wrongPW); code != 401 || !strings.HasPrefix(www, "Basic ") {
		t.Errorf("HTTP with a wrong password: %d %q", code, www)
	}
	if code, _ := get("alice", alicePW); code == 401 {
		t.Errorf("HTTP as alice: 401")
	}

	// A user added while the server runs can connect; a deleted one cannot.
	if r := runCLI(t, bobPW+"\n", nil, "password", "--password-stdin", "bob", "--data", dir); r.code != 0 {
		t.Fatalf("add bob: %+v", r)
	}
	testutil.WaitFor(t, 10*time.Second, "the running server to admit bob", func() bool {
		return as("bob", bobPW, "info").code == 0
	})
	if r := runCLI(t, "", nil, "password", "--delete", "bob", "--data", dir); r.code != 0 {
		t.Fatalf("delete bob: %+v", r)
	}
	testutil.WaitFor(t, 10*time.Second, "the running server to refuse bob", func() bool {
		return as("bob", bobPW, "info").code != 0
	})
	if code, _ := get("bob", bobPW); code != 401 {
		t.Errorf("HTTP as deleted bob: %d", code)
	}
	if r := runCLI(t, "", nil, "password", "--delete", "bob", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "no such user") {
		t.Errorf("deleting bob twice: %+v", r)
	}

	// A direct connection with the right password keeps working for others.
	nc, err := nats.Connect(url, nats.UserInfo("alice", alicePW))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()

	if code := p.stop(); code != 0 {
		t.Errorf("SIGTERM: exit %d", code)
	}
	outputs = append(outputs, p.out.String())
	if !strings.Contains(p.out.String(), "refused NATS connection") {
		t.Errorf("the server did not log the refusals:\n%s", p.out.String())
	}
	for _, o := range outputs {
		for _, pw := range []string{alicePW, bobPW, wrongPW} {
			if strings.Contains(o, pw) {
				t.Errorf("output shows a password:\n%s", o)
			}
		}
	}
	raw, _ := os.ReadFile(pwFile)
	if strings.Contains(string(raw), alicePW) || !strings.Contains(string(raw), fmt.Sprintf("alice:$2a$%02d$", broker.BcryptCost)) {
		t.Errorf("password file does not hold a cost-%d bcrypt hash of alice:\n%s", broker.BcryptCost, raw)
	}
}

// --address takes a host or an IP, IPv6 with or without a zone, never a
// port or an empty string (which would listen on every interface).
func TestCheckGatewayHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		says string // "" when accepted
	}{
		{"127.0.0.1", ""},
		{"localhost", ""},
		{"my-host.example", ""},
		{"0.0.0.0", ""},
		{"::1", ""},
		{"::", ""},
		{"fe80::1%eth0", ""},
		{"", "is empty"},
		{"127.0.0.1:8080", "--address 127.0.0.1 --port 8080"},
		{"[::1]:8080", "--address ::1 --port 8080"},
		{"[::1]", "not a host or IP"},
		{"127.0.0.1:", "not a host or IP"},
		{"http://x", "not a host or IP"},
		{"a b", "not a host or IP"},
	} {
		err := checkGatewayHost(tc.host)
		if tc.says == "" && err != nil || tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("checkGatewayHost(%q) = %v, want %q", tc.host, err, tc.says)
		}
	}
}
