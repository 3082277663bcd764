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
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// refusedBy does op on nc and reports whether the server answered it with a
// permissions violation (on errs, nc's error handler) within 2 s.
func refusedBy(t *testing.T, nc *nats.Conn, errs chan error, op func() error) bool {
	t.Helper()
	for len(errs) > 0 {
		<-errs
	}
	if err := op(); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-errs:
		return errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation")
	case <-time.After(2 * time.Second):
		return false
	}
}

// TestNativeWorkerCredentials runs native lambda workers on a server that
// requires passwords: each worker's own token (made by the runner) lets it
// take its events, and with those credentials, on real connections, it can
// neither read another worker's subject or callers' requests nor send
// events to any worker; a token names its worker under the signature.
func TestNativeWorkerCredentials(t *testing.T) {
	b := testutil.StartBroker(t, func(c *broker.Config) { c.RequirePassword = true })
	if err := broker.SetPassword(filepath.Join(b.DataDir(), broker.PasswordFileName), "ops", "s3cret-pw"); err != nil {
		t.Fatal(err)
	}
	user := nats.UserInfo("ops", "s3cret-pw")
	nc := testutil.Connect(t, b.NATSURL(), user)
	host, err := lambdas.New(testutil.Connect(t, b.NATSURL(), user), lambdas.WithNodeID("node-a"), lambdas.WithStopGrace(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(context.Background(), testutil.Connect(t, b.NATSURL(), user), runner.WithNodeID("node-a"),
		runner.WithDataDir(testutil.TempDir(t)), runner.WithNATSURL(b.NATSURL()), runner.WithLambdaHost(host))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.Stop(context.Background())
		_ = host.Close(context.Background())
	})
	c, _ := clientsdk.Connect(context.Background(), clientsdk.WithConn(nc))
	spec := clientsdk.AppSpec{Name: "fn", Kind: clientsdk.KindLambda, Lambda: &clientsdk.LambdaSpec{Protocol: clientsdk.ProtocolNATS}}
	if _, err := c.Push(context.Background(), spec, testutil.BuildGo(t, "./internal/testutil/workers/lambdanative"), nil); err != nil {
		t.Fatal(err)
	}
	testutil.WaitHosted(t, nc, "fn")
	invoke := func(event any) string {
		t.Helper()
		b, _ := json.Marshal(event)
		if s, ok := event.(string); ok {
			b = []byte(s)
		}
		var out []byte
		testutil.WaitFor(t, 20*time.Second, "lambda fn to answer", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err = c.Invoke(ctx, "fn", b)
			var e *clientsdk.Error
			return err == nil || !errors.As(err, &e) || (e.Code != 503 && e.Code != 404)
		})
		if err != nil {
			t.Fatalf("invoke %s: %v", b, err)
		}
		return string(out)
	}
	if got := invoke("world"); got != "Hello, world!" {
		t.Fatalf("answered %q", got)
	}
	own := invoke(map[string]string{"env": clientsdk.EnvLambdaSubject})
	if !strings.HasPrefix(own, "dartup.native.fn.") {
		t.Fatalf("worker subject %q", own)
	}
	sibling := clientsdk.LambdaWorkerSubject("fn", strings.Repeat("ab", 16))

	// The real worker, with the credentials the runner gave it.
	for _, tc := range []struct{ op, subject, want string }{
		{"steal", own, "allowed"}, // its own subject: the control
		{"steal", sibling, "refused"},
		{"steal", "dartup.native.fn.*", "refused"},
		{"steal", "dartup.native.>", "refused"},
		{"steal", clientsdk.LambdaSubject("fn"), "refused"},
		{"steal", "_INBOX.>", "refused"},
		{"inject", own, "refused"},
		{"inject", sibling, "refused"},
	} {
		if got := invoke(map[string]string{tc.op: tc.subject}); got != tc.want {
			t.Errorf("worker %s %s: %s, want %s", tc.op, tc.subject, got, tc.want)
		}
	}

	// Tokens made here with the cluster's secret, on connections of our own.
	js, _ := jetstream.New(nc)
	kv, _ := js.KeyValue(context.Background(), clientsdk.SecretsBucket)
	secret, err := kv.Get(context.Background(), clientsdk.WorkerSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Describe(context.Background(), "fn")
	if err != nil {
		t.Fatal(err)
	}
	a, bID := strings.Repeat("0a", 16), strings.Repeat("0b", 16)
	tokA := clientsdk.LambdaWorkerToken(secret.Value(), "fn", info.Spec.TokenNonce, a)
	errs := make(chan error, 10)
	wc, err := nats.Connect(b.NATSURL(), nats.Token(tokA), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("a worker token refused: %v", err)
	}
	defer wc.Close()
	sub := func(s string) func() error {
		return func() error { _, err := wc.Subscribe(s, func(*nats.Msg) {}); return err }
	}
	if refusedBy(t, wc, errs, sub(clientsdk.LambdaWorkerSubject("fn", a))) {
		t.Fatal("worker a may not subscribe to its own subject")
	}
	if !refusedBy(t, wc, errs, sub(clientsdk.LambdaWorkerSubject("fn", bID))) {
		t.Fatal("worker a subscribed to worker b's subject")
	}
	if !refusedBy(t, wc, errs, func() error { return wc.Publish(clientsdk.LambdaWorkerSubject("fn", a), []byte("x")) }) {
		t.Fatal("worker a published an event to its own subject")
	}
	// Direct mode: its lambda's requests in the runners' queue group only;
	// a plain subscription (every request) and another lambda's are refused.
	qsub := func(s string) func() error {
		return func() error {
			_, err := wc.QueueSubscribe(s, clientsdk.LambdaQueueGroup, func(*nats.Msg) {})
			return err
		}
	}
	if refusedBy(t, wc, errs, qsub(clientsdk.LambdaSubject("fn"))) {
		t.Fatal("worker a may not queue-subscribe to its lambda's requests")
	}
	if !refusedBy(t, wc, errs, sub(clientsdk.LambdaSubject("fn"))) {
		t.Fatal("worker a plain-subscribed to its lambda's requests")
	}
	if !refusedBy(t, wc, errs, func() error {
		_, err := wc.QueueSubscribe(clientsdk.LambdaSubject("fn"), "other-group", func(*nats.Msg) {})
		return err
	}) {
		t.Fatal("worker a subscribed to its lambda's requests in another queue group")
	}
	for _, s := range []string{clientsdk.LambdaSubject("other"), "lambda.*", "lambda.>"} {
		if !refusedBy(t, wc, errs, qsub(s)) {
			t.Fatalf("worker a queue-subscribed to %s", s)
		}
	}
	// The worker id is under the signature: a's MAC with b's id is refused,
	// and so is the app token with a worker id spliced in.
	forged := strings.Replace(tokA, "."+a+".", "."+bID+".", 1)
	appTok := clientsdk.WorkerToken(secret.Value(), "fn", info.Spec.TokenNonce)
	spliced := strings.TrimSuffix(appTok, appTok[strings.LastIndexByte(appTok, '.'):]) + "." + bID + appTok[strings.LastIndexByte(appTok, '.'):]
	for _, tok := range []string{forged, spliced} {
		if bad, err := nats.Connect(b.NATSURL(), nats.Token(tok)); err == nil {
			bad.Close()
			t.Fatalf("a forged worker token %s was accepted", tok)
		}
	}
	// The app's own token reaches no worker's subject.
	errs2 := make(chan error, 10)
	ac, err := nats.Connect(b.NATSURL(), nats.Token(appTok), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs2 <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	if !refusedBy(t, ac, errs2, func() error { _, err := ac.Subscribe(own, func(*nats.Msg) {}); return err }) {
		t.Fatal("the app token subscribed to a worker's subject")
	}
}
