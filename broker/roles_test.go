package broker_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// permissionErrors connects to url and returns the connection and a channel
// of the permission violations the server reports on it.
func permissionErrors(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, chan error) {
	t.Helper()
	errs := make(chan error, 16)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if strings.Contains(err.Error(), "Permissions Violation") {
			errs <- err
		}
	}))
	return testutil.Connect(t, url, opts...), errs
}

// violated reports whether the server refused what the caller just did on nc.
func violated(t *testing.T, nc *nats.Conn, errs chan error) bool {
	t.Helper()
	_ = nc.Flush()
	select {
	case <-errs:
		return true
	case <-time.After(300 * time.Millisecond):
		return false
	}
}

// TestReplyOnlyConnections checks the restricted roles a connection asks for
// by its name, with every kind of credential: it may publish to inboxes and
// nothing else, whatever its user could do otherwise.
func TestReplyOnlyConnections(t *testing.T) {
	b := testutil.StartBroker(t, func(c *broker.Config) { c.ReplyPrefixes = []string{"_MYINBOX"} })
	addUser(t, b, "ops", "pw-of-ops")
	for _, creds := range []struct {
		name string
		opts []nats.Option
	}{
		{"anonymous loopback", nil},
		{"password user", []nats.Option{nats.UserInfo("ops", "pw-of-ops")}},
	} {
		t.Run(creds.name, func(t *testing.T) {
			nc, errs := permissionErrors(t, b.NATSURL(), append(creds.opts, nats.Name(clientsdk.ReplyConnName+" test"))...)
			for _, subject := range []string{"_INBOX.a.b", "_INBOX_APP.chat.x", "_MYINBOX.q"} {
				_ = nc.Publish(subject, nil)
				if violated(t, nc, errs) {
					t.Errorf("a reply-only connection may not publish to %s", subject)
				}
			}
			for _, subject := range []string{"dartup.api.kill", "$JS.API.STREAM.DELETE.KV_DARTUP_APPS", "$KV.DARTUP_SECRETS.worker-hmac", "lambda.x"} {
				_ = nc.Publish(subject, []byte(`{"name":"x"}`))
				if !violated(t, nc, errs) {
					t.Errorf("a reply-only connection published to %s", subject)
				}
			}
			if _, err := nc.Subscribe("_INBOX.>", func(*nats.Msg) {}); err == nil && !violated(t, nc, errs) {
				t.Error("a reply-only connection subscribed")
			}
		})
	}
	// The same user without the name keeps its full rights.
	nc, errs := permissionErrors(t, b.NATSURL(), nats.UserInfo("ops", "pw-of-ops"))
	_ = nc.Publish("dartup.app.x.y", nil)
	if violated(t, nc, errs) {
		t.Fatal("a normal connection lost its rights")
	}
}

// TestControlAPIRefusesForeignReplies sends control API requests whose reply
// subject is not an inbox: they are neither run nor answered, and counted.
func TestControlAPIRefusesForeignReplies(t *testing.T) {
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL())
	sub, err := nc.SubscribeSync("victim.>")
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{clientsdk.VerbList, "no-such-verb"} {
		if err := nc.PublishRequest(clientsdk.APISubject(verb), "victim.reply", nil); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 5*time.Second, "two refusals", func() bool { return b.RefusedRequests() == 2 })
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("the control API answered a foreign reply subject: %q", m.Data)
	}
	// Inbox replies are answered as before.
	if _, err := nc.Request(clientsdk.APISubject(clientsdk.VerbList), []byte("{}"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestAppUsersGetNoLocalExemption: without passwords, loopback clients need
// none, except those running as an app's user (found from the socket's
// owner in /proc/net/tcp): they must use their worker token.
func TestAppUsersGetNoLocalExemption(t *testing.T) {
	me := uint32(os.Geteuid())
	for _, c := range []struct {
		name    string
		appUser func(uint32) bool
		admit   bool
	}{
		{"this process runs as an app's user", func(u uint32) bool { return u == me }, false},
		{"this process is an ordinary local user", func(u uint32) bool { return u == me+1 }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := testutil.StartBroker(t, func(cfg *broker.Config) { cfg.AppUser = c.appUser })
			if err := natsConnect(b.NATSURL()); (err == nil) != c.admit {
				t.Fatalf("anonymous NATS connection: %v, want admitted=%v", err, c.admit)
			}
			code, _, _ := httpGet(t, b.HTTPURL()+"/nosuch", "", "")
			if (code != 401) != c.admit {
				t.Fatalf("anonymous HTTP request: %d, want admitted=%v", code, c.admit)
			}
			// In-process connections are dartup's own.
			if nc, err := b.Connect("in-process"); err != nil {
				t.Fatalf("in-process connection refused: %v", err)
			} else {
				nc.Close()
			}
		})
	}
}

// tokenFor pushes a command app named app (no runner will run it) and
// returns its worker token, made with the server's secret and the app's
// token nonce, the way a runner makes it.
func tokenFor(t *testing.T, nc *nats.Conn, app string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := clientsdk.Connect(ctx, clientsdk.WithConn(nc))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Push(ctx, clientsdk.AppSpec{Name: app, Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/true"}}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, clientsdk.SecretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := kv.Get(ctx, clientsdk.WorkerSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	return clientsdk.WorkerToken(secret.Value(), app, spec.TokenNonce)
}
