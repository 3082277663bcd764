package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

// TestNoConfusedDeputy replays the adversarial review's attacks on a real
// `dartup serve --require-password`: an app's worker token, through the stock
// `nats` CLI, sends requests whose reply subject is dartup's control API or
// JetStream's API, hoping that dartup answers them with its own rights. A
// stdio `cat` lambda echoes its event, so an answer sent there would be
// exactly the attacker's chosen message. Nothing may happen; the refusals
// are counted; honest requests from the same token still work.
func TestNoConfusedDeputy(t *testing.T) {
	dir := testutil.TempDir(t)
	const pw = "adm1n-pw"
	setPassword(t, dir, "admin", pw)
	s := startServe(t, dir, "--require-password")
	s.env = []string{"DARTUP_USER=admin", "DARTUP_PASSWORD=" + pw}
	s.dartup("push", "--lambda", "--name", "catl", "--protocol", "stdio", "--runtime", "command", "--", "/bin/cat")
	s.dartup("push", "--name", "victim", "--runtime", "command", "--", "/bin/sleep", "1000")
	waitListed(t, s, "victim", "alive")

	natsCLI := testutil.NATSCLI(t)
	admin := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(natsCLI, append([]string{"--server", s.natsURL, "--user", "admin", "--password", pw}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("nats %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	secret := admin("kv", "get", clientsdk.SecretsBucket, clientsdk.WorkerSecretKey, "--raw")
	s.dartup("push", "--name", "attacker", "--runtime", "command", "--", "/bin/sleep", "1000")
	var attacker clientsdk.AppInfo
	if err := json.Unmarshal([]byte(s.dartup("info", "attacker", "--json")), &attacker); err != nil {
		t.Fatal(err)
	}
	token := clientsdk.WorkerToken([]byte(secret), "attacker", attacker.Spec.TokenNonce)
	attack := func(subject, body, reply string) {
		t.Helper()
		out, err := exec.Command(natsCLI, "--server", s.natsURL, "--token", token, "pub", subject, body, "--reply", reply).CombinedOutput()
		if err != nil {
			t.Fatalf("nats pub %s --reply %s: %v\n%s", subject, reply, err, out)
		}
	}
	attack("lambda.catl", `{"name":"victim"}`, "dartup.api.kill")
	attack("lambda.catl", "", "$JS.API.STREAM.DELETE.KV_DARTUP_APPS")
	attack("lambda.catl", "known", "$KV.DARTUP_SECRETS.worker-hmac")
	attack(clientsdk.LambdaWhySubject("nosuch"), "", "$KV.DARTUP_SECRETS.worker-hmac") // the broker answers why with a 404
	// An admin's request with a bad reply subject is refused too: dartup
	// never publishes its own answers onto its own state.
	admin("pub", clientsdk.LambdaHostedSubject("catl"), "", "--reply", "$KV.DARTUP_SECRETS.worker-hmac")
	admin("pub", "dartup.api.list", "", "--reply", "$KV.DARTUP_APPS.victim")

	// Each attack is refused where it lands, once: the broker counts the
	// why and control API refusals (2), the runner the lambda's (3, and the
	// presence probe's).
	testutil.WaitFor(t, 20*time.Second, "the refusals to be counted", func() bool {
		var info clientsdk.ServerInfo
		var app clientsdk.AppInfo
		return json.Unmarshal([]byte(s.dartup("info", "--json")), &info) == nil && info.RefusedRequests == 2 &&
			json.Unmarshal([]byte(s.dartup("info", "catl", "--json")), &app) == nil && refusedReplies(app) >= 3
	})
	if got := admin("kv", "get", clientsdk.SecretsBucket, clientsdk.WorkerSecretKey, "--raw"); got != secret {
		t.Fatalf("the worker secret changed: %q", got)
	}
	if out := s.dartup("list"); !strings.Contains(out, " • victim - alive") {
		t.Fatalf("victim was touched:\n%s", out)
	}
	admin("kv", "info", clientsdk.AppsBucket) // the apps bucket still exists

	// The same token's honest request, from its own inbox, is answered.
	nc, err := nats.Connect(s.natsURL, nats.Token(token), nats.CustomInboxPrefix(clientsdk.WorkerInboxPrefix("attacker")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, "lambda.catl", []byte("honest"))
	if err != nil || string(m.Data) != "honest" {
		t.Fatalf("an honest request from a worker: %v %q", err, msgData(m))
	}
}

func refusedReplies(a clientsdk.AppInfo) uint64 {
	var n uint64
	for _, st := range a.Summary.Instances {
		if st.Lambda != nil {
			n += st.Lambda.RefusedReplies
		}
	}
	return n
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// setPassword creates user in DIR/passwords with the real CLI.
func setPassword(t *testing.T, dir, user, pw string) {
	t.Helper()
	cmd := exec.Command(testutil.Dartup(t), "password", "--data", dir, "--password-stdin", user)
	cmd.Stdin = bytes.NewBufferString(pw + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dartup password: %v\n%s", err, out)
	}
}

// waitListed waits until `dartup list` shows app in state.
func waitListed(t *testing.T, s *server, app, state string) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, app+" to be "+state, func() bool {
		out, _ := s.try("list")
		return strings.Contains(out, " • "+app+" - "+state)
	})
}
