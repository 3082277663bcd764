package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/clientsdk/app"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestWorkerCredentialsAreScoped runs an app on a server that requires
// passwords: the app's own credentials (NATS_TOKEN from the runner) work for
// its messaging, and a real connection with them cannot use the control API or
// JetStream's API.
func TestWorkerCredentialsAreScoped(t *testing.T) {
	b := testutil.StartBroker(t, func(c *broker.Config) { c.RequirePassword = true })
	if err := broker.SetPassword(filepath.Join(b.DataDir(), broker.PasswordFileName), "ops", "s3cret-pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := nats.Connect(b.NATSURL()); err == nil {
		t.Fatal("connected without a password to a server that requires one")
	}
	user := nats.UserInfo("ops", "s3cret-pw")
	nc := testutil.Connect(t, b.NATSURL(), user)
	r, err := runner.New(context.Background(), testutil.Connect(t, b.NATSURL(), user), runner.WithNodeID("node-a"),
		runner.WithDataDir(testutil.TempDir(t)), runner.WithNATSURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	c, _ := clientsdk.Connect(context.Background(), clientsdk.WithConn(nc))
	if _, err := c.Push(context.Background(), clientsdk.AppSpec{Name: "chat", Instances: 2}, testutil.BuildGo(t, "./internal/testutil/workers/pubsub"), nil); err != nil {
		t.Fatal(err)
	}
	var st stats
	testutil.WaitFor(t, 20*time.Second, "both instances answering over their scoped connections", func() bool {
		for _, i := range []string{"0", "1"} {
			msg, err := nc.Request("dartup.app.chat.stats."+i, nil, time.Second)
			if err != nil || json.Unmarshal(msg.Data, &st) != nil {
				return false
			}
		}
		return true
	})
	if st.APIError == "" {
		t.Fatalf("an app's worker reached the control API: %+v", st)
	}
	// Messaging between instances works with the scoped credentials.
	m := &nats.Msg{Subject: "dartup.app.chat.trigger", Header: nats.Header{"Dartup-Sender": []string{"test"}}, Data: []byte(`{"publisher":0,"n":5}`)}
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "instance 1 to receive instance 0's events", func() bool {
		msg, err := nc.Request("dartup.app.chat.stats.1", nil, time.Second)
		return err == nil && json.Unmarshal(msg.Data, &st) == nil && st.Count["chat.0"] == 5
	})

	// The same credentials on a connection of our own.
	js, _ := jetstream.New(nc)
	kv, _ := js.KeyValue(context.Background(), clientsdk.SecretsBucket)
	secret, err := kv.Get(context.Background(), clientsdk.WorkerSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	info, err := c.Describe(context.Background(), "chat")
	if err != nil {
		t.Fatal(err)
	}
	wc, err := nats.Connect(b.NATSURL(), nats.Token(clientsdk.WorkerToken(secret.Value(), "chat", info.Spec.TokenNonce)),
		nats.CustomInboxPrefix(clientsdk.WorkerInboxPrefix("chat")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("worker token refused: %v", err)
	}
	defer wc.Close()
	if _, err := wc.Request("dartup.api.list", nil, time.Second); err == nil {
		t.Fatal("worker token called the control API")
	}
	if _, err := wc.Request("$JS.API.INFO", nil, time.Second); err == nil {
		t.Fatal("worker token called JetStream's API")
	}
	if _, err := wc.Request("dartup.app.chat.stats.0", nil, time.Second); err != nil {
		t.Fatalf("worker token cannot reach its own app: %v", err)
	}
	// A lambda call that finds no responders says why, as for an operator:
	// the worker may ask dartup.lambda.why.* (and nothing else of dartup's).
	ac := app.NewConn(wc, app.Instance{App: "chat", Index: 0, Node: "node-a"})
	for name, want := range map[string]int{"nosuch": 404, "chat": 403} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := ac.Request(ctx, name, nil)
		cancel()
		if e, ok := clientsdk.AsError(err); !ok || e.Code != want {
			t.Fatalf("a worker's call of lambda %s: %v, want %d", name, err, want)
		}
	}
	// It may store async invocations (dartup.async.*, as it may call
	// lambda.*) and gets JetStream's acknowledgement in its own inbox...
	ack, err := wc.Request(clientsdk.AsyncSubject("chat"), []byte(`{}`), 2*time.Second)
	if err != nil || !strings.Contains(string(ack.Data), `"stream":"`+clientsdk.AsyncStream+`"`) {
		t.Fatalf("worker token cannot store an async invocation: %v %s", err, msgText(ack))
	}
	// ...but not write dead letters or counters.
	for _, subject := range []string{clientsdk.DLQSubject("chat"), clientsdk.CounterSubject("chat", clientsdk.CounterRetried)} {
		for len(errs) > 0 {
			<-errs
		}
		_ = wc.Publish(subject, []byte(`{}`))
		_ = wc.Flush()
		select {
		case err := <-errs:
			if !strings.Contains(err.Error(), "Permissions Violation") {
				t.Fatalf("publishing to %s: %v", subject, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("a worker published to %s", subject)
		}
	}
	for _, subject := range []string{"dartup.app.other.events", "_INBOX.>", "_INBOX_APP.other.>", "dartup.lambda.hosted.chat"} {
		for len(errs) > 0 {
			<-errs
		}
		if _, err := wc.Subscribe(subject, func(*nats.Msg) {}); err == nil {
			_ = wc.Flush()
		}
		got := false
		timeout := time.After(2 * time.Second)
		for !got {
			select {
			case err := <-errs:
				got = errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation")
			case <-timeout:
				t.Fatalf("subscribing to %s was not refused", subject)
			}
		}
	}
	// Nor can it make the server let it publish anywhere else: a message to
	// its own subject with a reply subject of its choosing, received back,
	// gives no right to publish to that reply subject (the escalation an
	// adversarial review found through nats-server's response permissions).
	own, err := wc.SubscribeSync("dartup.app.chat.self")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"dartup.api.list", "$JS.API.STREAM.LIST", "$KV.DARTUP_SECRETS.worker-hmac"} {
		for len(errs) > 0 {
			<-errs
		}
		if err := wc.PublishRequest("dartup.app.chat.self", target, nil); err != nil {
			t.Fatal(err)
		}
		m, err := own.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = m.Respond([]byte(`{"name":"chat"}`))
		_ = wc.Flush()
		select {
		case err := <-errs:
			if !strings.Contains(err.Error(), "Permissions Violation") {
				t.Fatalf("answering with reply %s: %v", target, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("a worker published to %s by answering its own message", target)
		}
	}
	// A forged token for another app is refused.
	if _, err := nats.Connect(b.NATSURL(), nats.Token(clientsdk.WorkerToken([]byte("guess"), "chat", info.Spec.TokenNonce))); err == nil {
		t.Fatal("a forged worker token was accepted")
	}
	// The token of a removed app stops working, and its connections close.
	if err := c.Remove(context.Background(), "chat"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the removed app's worker connection to close", func() bool { return wc.IsClosed() || !wc.IsConnected() })
	if _, err := nats.Connect(b.NATSURL(), nats.Token(clientsdk.WorkerToken(secret.Value(), "chat", info.Spec.TokenNonce))); err == nil {
		t.Fatal("the token of a removed app was accepted")
	}
	// A new app of the same name gets a new nonce: the old token stays dead.
	if _, err := c.Push(context.Background(), clientsdk.AppSpec{Name: "chat", Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/sleep", "600"}}, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := nats.Connect(b.NATSURL(), nats.Token(clientsdk.WorkerToken(secret.Value(), "chat", info.Spec.TokenNonce))); err == nil {
		t.Fatal("a removed app's token works for a new app of the same name")
	}
}

func msgText(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}
