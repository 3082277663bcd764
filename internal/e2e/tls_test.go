package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	natsgo "github.com/nats-io/nats.go"
)

const tlsPW = "e2e-tls-pw-4c1d9a"

// addUser runs the real `dartup password` (real bcrypt cost) on data dir dir.
func addUser(t *testing.T, dir, user, pw string) {
	t.Helper()
	cmd := exec.Command(testutil.Dartup(t), "password", "--password-stdin", user, "--data", dir)
	cmd.Stdin = strings.NewReader(pw + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dartup password: %v\n%s", err, out)
	}
}

// natsCLI runs the real `nats` CLI and returns its combined output.
func natsCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testutil.NATSCLI(t), args...).CombinedOutput()
	return string(out), err
}

// workerStats asks instance 0 of a pubsub app for its stats over nc: an
// answer shows that the worker connected to NATS itself.
func workerStats(nc *natsgo.Conn, app string) bool {
	m, err := nc.Request("dartup.app."+app+".stats.0", nil, time.Second)
	return err == nil && json.Valid(m.Data)
}

func httpsStatus(t *testing.T, c *http.Client, url, user, pw string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSelfSignedTLSEndToEnd: `dartup serve --require-password
// --tls-self-signed` serves NATS and HTTPS with a CA it made in DATA/tls.
// The dartup CLI (flag and env), the real `nats` CLI and an HTTPS client
// that trust the CA get in; a wrong CA is refused with a clear error; a
// `dartup runner` joins over tls:// and runs a daemon whose worker connects
// to NATS over TLS itself (NATS_CA); a restart reuses the CA and the
// certificate, and the runner and the CLI keep trusting it.
func TestSelfSignedTLSEndToEnd(t *testing.T) {
	dir := testutil.TempDir(t)
	addUser(t, dir, "alice", tlsPW)
	s := startServe(t, dir, "--require-password", "--tls-self-signed")
	if s.tlsCA != filepath.Join(dir, "tls", "ca.pem") || !strings.HasPrefix(s.natsURL, "tls://127.0.0.1:") || !strings.HasPrefix(s.httpURL, "https://") {
		t.Fatalf("ready file: CA %q, NATS %s, HTTP %s", s.tlsCA, s.natsURL, s.httpURL)
	}
	testutil.WaitFor(t, 5*time.Second, "serve to say where the CA is", func() bool {
		return strings.Contains(s.log.String(), "--tls-ca "+s.tlsCA)
	})
	ca, _ := os.ReadFile(s.tlsCA)
	cert, _ := os.ReadFile(filepath.Join(dir, "tls", "server.pem"))
	if st, err := os.Stat(filepath.Join(dir, "tls", "ca-key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("CA key: %v, mode %v", err, st.Mode().Perm())
	}
	s.env = []string{"DARTUP_USER=alice", "DARTUP_PASSWORD=" + tlsPW}

	t.Run("dartup CLI", func(t *testing.T) {
		if out := s.dartup("list", "--tls-ca", s.tlsCA); out != "No active applications.\n" {
			t.Errorf("list --tls-ca: %q", out)
		}
		env := s.env
		s.env = append(env, "DARTUP_TLS_CA="+s.tlsCA)
		s.dartup("info")
		s.env = env
		other := testutil.NewPKI(t, "not the server's CA")
		for _, args := range [][]string{{"list", "--tls-ca", other.CAFile}, {"list"}} {
			out, err := s.try(args...)
			if err == nil || !strings.Contains(out, "not trusted") || !strings.Contains(out, "--tls-ca") {
				t.Errorf("dartup %v: %v\n%s", args, err, out)
			}
		}
	})
	t.Run("nats CLI", func(t *testing.T) {
		out, err := natsCLI(t, "--server", s.natsURL, "--tlsca", s.tlsCA, "--user", "alice", "--password", tlsPW, "req", clientsdk.APISubject(clientsdk.VerbInfo), "")
		if err != nil || !strings.Contains(out, s.natsURL) {
			t.Errorf("nats --tlsca req dartup.api.info: %v\n%s", err, out)
		}
		if out, err := natsCLI(t, "--server", s.natsURL, "--user", "alice", "--password", tlsPW, "req", clientsdk.APISubject(clientsdk.VerbInfo), ""); err == nil {
			t.Errorf("nats without the CA got an answer:\n%s", out)
		}
	})
	t.Run("HTTPS", func(t *testing.T) {
		hc := testutil.HTTPSClient(t, s.tlsCA, "", "")
		if c := httpsStatus(t, hc, s.httpURL+"/healthz", "", ""); c != 200 {
			t.Errorf("/healthz = %d", c)
		}
		if c := httpsStatus(t, hc, s.httpURL+"/nosuch", "", ""); c != 401 {
			t.Errorf("/nosuch without a password = %d, want 401", c)
		}
		if c := httpsStatus(t, hc, s.httpURL+"/nosuch", "alice", tlsPW); c != 404 {
			t.Errorf("/nosuch as alice = %d, want 404", c)
		}
	})

	s.env = append(s.env, "DARTUP_TLS_CA="+s.tlsCA)

	// A runner node over tls://, and a daemon on it that talks NATS itself.
	startRunnerWith(t, []string{"DARTUP_USER=alice", "DARTUP_PASSWORD=" + tlsPW},
		"--server", s.natsURL, "--tls-ca", s.tlsCA, "--name", "r1", "--label", "zone=tls", "--data", testutil.TempDir(t))
	pubsub := testutil.BuildGo(t, "./internal/testutil/workers/pubsub")
	s.dartup("push", "--name", "chat", "--constraint", "zone=tls", pubsub)
	nc := testutil.Connect(t, s.natsURL, natsgo.RootCAs(s.tlsCA), natsgo.UserInfo("alice", tlsPW))
	testutil.WaitFor(t, 30*time.Second, "the daemon on r1 to answer over NATS", func() bool {
		a := appSummary(t, s, "chat")
		return len(a.Instances) == 1 && a.Instances[0].Node == "r1" && workerStats(nc, "chat")
	})

	// Restart: the same CA and certificate; everyone still trusts the server.
	nc.Close()
	s.stop()
	s2 := startServe(t, dir, "--require-password", "--tls-self-signed", "--nats-addr", strings.TrimPrefix(s.natsURL, "tls://"))
	s2.env = s.env
	ca2, _ := os.ReadFile(s2.tlsCA)
	cert2, _ := os.ReadFile(filepath.Join(dir, "tls", "server.pem"))
	if !bytes.Equal(ca, ca2) || !bytes.Equal(cert, cert2) {
		t.Errorf("restart: CA same %v, certificate same %v; want both reused", bytes.Equal(ca, ca2), bytes.Equal(cert, cert2))
	}
	if strings.Contains(s2.log.String(), "self-signed TLS: made") {
		t.Errorf("restart made new certificates:\n%s", s2.log.String())
	}
	nc = testutil.Connect(t, s2.natsURL, natsgo.RootCAs(s2.tlsCA), natsgo.UserInfo("alice", tlsPW))
	testutil.WaitFor(t, 30*time.Second, "the runner and its daemon back after the restart", func() bool {
		out, err := s2.try("nodes", "--json")
		return err == nil && strings.Contains(out, `"id": "r1"`) && workerStats(nc, "chat")
	})
}

// TestMutualTLSEndToEnd: with --tls-verify-clients, the CLI, the nats CLI
// and HTTPS clients need a client certificate from --tls-ca (a clear error
// without one; /healthz stays open), and a daemon on the server's own runner
// still connects with its token and the CA it was given.
func TestMutualTLSEndToEnd(t *testing.T) {
	pki := testutil.NewPKI(t, "dartup e2e CA")
	serverCert, serverKey := pki.Issue(t, "server", "127.0.0.1", "localhost")
	clientCert, clientKey := pki.Issue(t, "alice")
	s := startServe(t, testutil.TempDir(t), "--tls-cert", serverCert, "--tls-key", serverKey, "--tls-ca", pki.CAFile, "--tls-verify-clients")
	s.env = []string{"DARTUP_TLS_CA=" + pki.CAFile}

	out, err := s.try("list")
	if err == nil || !strings.Contains(out, "client certificate") || !strings.Contains(out, "--tls-cert") {
		t.Errorf("dartup list without a client certificate: %v\n%s", err, out)
	}
	s.env = append(s.env, "DARTUP_TLS_CERT="+clientCert, "DARTUP_TLS_KEY="+clientKey)
	if out := s.dartup("list"); out != "No active applications.\n" {
		t.Errorf("dartup list with a client certificate: %q", out)
	}
	if out, err := natsCLI(t, "--server", s.natsURL, "--tlsca", pki.CAFile, "req", clientsdk.APISubject(clientsdk.VerbInfo), ""); err == nil {
		t.Errorf("nats without a client certificate got an answer:\n%s", out)
	}
	out, err = natsCLI(t, "--server", s.natsURL, "--tlsca", pki.CAFile, "--tlscert", clientCert, "--tlskey", clientKey, "req", clientsdk.APISubject(clientsdk.VerbInfo), "")
	if err != nil || !strings.Contains(out, s.natsURL) {
		t.Errorf("nats with a client certificate: %v\n%s", err, out)
	}

	noCert := testutil.HTTPSClient(t, pki.CAFile, "", "")
	withCert := testutil.HTTPSClient(t, pki.CAFile, clientCert, clientKey)
	if c := httpsStatus(t, noCert, s.httpURL+"/healthz", "", ""); c != 200 {
		t.Errorf("/healthz without a client certificate = %d", c)
	}
	if c := httpsStatus(t, noCert, s.httpURL+"/nosuch", "", ""); c != 403 {
		t.Errorf("/nosuch without a client certificate = %d, want 403", c)
	}
	if c := httpsStatus(t, withCert, s.httpURL+"/nosuch", "", ""); c != 404 {
		t.Errorf("/nosuch with a client certificate = %d, want 404", c)
	}

	pubsub := testutil.BuildGo(t, "./internal/testutil/workers/pubsub")
	s.dartup("push", "--name", "chat", pubsub)
	nc := testutil.Connect(t, s.natsURL, natsgo.RootCAs(pki.CAFile), natsgo.ClientCert(clientCert, clientKey))
	testutil.WaitFor(t, 30*time.Second, "the daemon to answer over NATS", func() bool { return workerStats(nc, "chat") })
}

// TestClusterWithRouteAuthAndTLS: two `dartup serve` cluster over mutual TLS
// routes (certificates from one CA, reused from --tls-cert) with a cluster
// secret, one from --cluster-secret-file and one from DARTUP_CLUSTER_SECRET;
// both nodes show up, a push on one is seen on the other, and the secret
// appears in no log.
func TestClusterWithRouteAuthAndTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const secret = "e2e-cluster-secret-0b5e8d2f71"
	pki := testutil.NewPKI(t, "dartup cluster CA")
	secretFile := filepath.Join(testutil.TempDir(t), "cluster-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nats, routes := freePorts(t, 2), freePorts(t, 2)
	servers := make([]*server, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		certFile, keyFile := pki.Issue(t, fmt.Sprintf("s%d", i+1), "127.0.0.1", "localhost")
		dir := testutil.TempDir(t)
		addUser(t, dir, "alice", tlsPW)
		args := []string{"--name", fmt.Sprintf("s%d", i+1), "--require-password",
			"--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", pki.CAFile,
			"--cluster-addr", fmt.Sprintf("127.0.0.1:%d", routes[i]), "--routes", fmt.Sprintf("nats://127.0.0.1:%d", routes[1-i])}
		var env []string
		if i == 0 {
			args = append(args, "--cluster-secret-file", secretFile)
		} else {
			env = []string{"DARTUP_CLUSTER_SECRET=" + secret}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i] = startServeEnv(t, env, dir, append([]string{"--nats-addr", fmt.Sprintf("127.0.0.1:%d", nats[i])}, args...)...)
			servers[i].env = []string{"DARTUP_USER=alice", "DARTUP_PASSWORD=" + tlsPW, "DARTUP_TLS_CA=" + pki.CAFile}
		}()
	}
	wg.Wait()
	testutil.WaitFor(t, 30*time.Second, "both servers in `dartup nodes`", func() bool {
		out, err := servers[0].try("nodes", "--json")
		var nodes []clientsdk.Node
		return err == nil && json.Unmarshal([]byte(out), &nodes) == nil && len(nodes) == 2
	})
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	servers[1].dartup("push", "--name", "web", "-j", "2", "--env", "WORKER_MODE=run", worker)
	testutil.WaitFor(t, 30*time.Second, "web 2/2 seen through s1", func() bool { return appSummary(t, servers[0], "web").Running == 2 })
	for i, s := range servers {
		if strings.Contains(s.log.String(), secret) {
			t.Errorf("s%d's log shows the cluster secret", i+1)
		}
	}
}
