package dart_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go/jetstream"
)

// TestWireNative replays runLambda on the native protocol (docs/protocol.md
// section 7, via internal/dartmimic with DARTUP_LAMBDA_SUBJECT set: the NATS
// lines of native.dart byte for byte) under the real lambdas.Manager, invoked
// with DartUp.request's lines (4.6). The worker's answers reach the raw
// caller exactly as it wrote them.
func TestWireNative(t *testing.T) {
	b, m, bin, apps := mimicManager(t)
	deploy := func(name string, keepWarm time.Duration, env ...string) {
		s := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"bootstrap"},
			Lambda: &clientsdk.LambdaSpec{Protocol: clientsdk.ProtocolNATS, KeepWarm: (*clientsdk.Duration)(&keepWarm)}, Revision: 1}.WithDefaults()
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := m.Deploy(s, lambdas.Command{Path: bin, Env: append(env, "NATS_URL="+b.NATSURL())}); err != nil {
			t.Fatal(err)
		}
		spec, _ := json.Marshal(s)
		if _, err := apps.Put(context.Background(), name, spec); err != nil {
			t.Fatal(err)
		}
	}
	deploy("hello", time.Minute)
	deploy("broken", time.Minute, "DARTMIMIC_INIT_FAIL=1")
	// The same, its init error sent behind 20,000 notices dartup must read
	// first: the worker's exit may be seen before the notice is read.
	deploy("busybroken", time.Minute, "DARTMIMIC_INIT_FAIL=1", "DARTMIMIC_FLOOD=20000")
	deploy("brief", time.Second)

	const inbox = "_INBOX.Xf3kP9qL2mN8vB4wZ7yT1c"
	dart := dialDart(t, b.NATSURL())
	dart.send("SUB " + inbox + ".* 1\r\n")
	token := 0
	request := func(lambda, data string) reply {
		t.Helper()
		token++
		dart.send(fmt.Sprintf("PUB lambda.%s %s.%d %d\r\n%s\r\n", lambda, inbox, token, len(data), data))
		r := dart.msg()
		if r.subject != fmt.Sprintf("%s.%d", inbox, token) || r.sid != "1" {
			t.Fatalf("reply on %s sid %s, want %s.%d sid 1", r.subject, r.sid, inbox, token)
		}
		return r
	}

	// A raw event: the worker's PUB of the body, as a plain MSG.
	if r := request("hello", ""); r.op != "MSG" || string(r.data) != "Hello, lambda world!" {
		t.Fatalf("raw invocation answered %s %q", r.op, r.data)
	}
	ev := `{"resource":"/{proxy+}","path":"/hello","httpMethod":"GET","headers":{"Host":"localhost:2374"},` +
		`"queryStringParameters":{"name":"Ann"},"requestContext":{"requestId":"r-1"},"body":null,"isBase64Encoded":false}`
	want := `{"statusCode":200,"headers":{"content-type":"text/plain; charset=utf-8"},"body":"Hello, lambda world!","isBase64Encoded":false}`
	if r := request("hello", ev); string(r.data) != want {
		t.Fatalf("API Gateway invocation answered %q, want %q", r.data, want)
	}

	// A throwing handler: the worker's own HPUB of the service error,
	// headers and body exactly as native.dart writes them.
	r := request("hello", "throw")
	wantBody := `{"code":500,"errorType":"StateError","errorMessage":"Bad state: boom"}`
	if r.op != "HMSG" || r.status != "" || len(r.headers) != 2 || r.headers["Nats-Service-Error"] != "Bad state: boom" ||
		r.headers["Nats-Service-Error-Code"] != "500" || string(r.data) != wantBody {
		t.Fatalf("error reply: %s status %q headers %v body %q", r.op, r.status, r.headers, r.data)
	}
	// Over 6 MiB: 413, never the result.
	r = request("hello", "huge")
	var e clientsdk.Error
	if err := json.Unmarshal(r.data, &e); err != nil || r.headers["Nats-Service-Error-Code"] != "413" || e.Type != clientsdk.TypeResponseTooLarge {
		t.Fatalf("a huge result: headers %v body %.200q", r.headers, r.data)
	}
	// The loop went on, on the same worker; dartup counted each outcome.
	if r := request("hello", ""); string(r.data) != "Hello, lambda world!" {
		t.Fatalf("after errors the lambda answered %q", r.data)
	}
	// The done notice of the last one may still be on its way to the
	// Manager (the worker answered the caller itself).
	var st clientsdk.LambdaStats
	var warm int
	testutil.WaitFor(t, 5*time.Second, "the Manager to count the invocations", func() bool {
		st, warm, _ = m.Stats("hello")
		return st.Invocations == 5
	})
	if st.Invocations != 5 || st.Errors != 2 || st.ColdStarts != 1 || warm != 1 {
		t.Fatalf("stats %+v, %d warm", st, warm)
	}

	// An init-error notice: the first invocation gets the init error.
	r = request("broken", "")
	if r.headers["Nats-Service-Error-Code"] != "500" || !strings.Contains(string(r.data), "Bad state: init failed") || !strings.Contains(string(r.data), "StateError") {
		t.Fatalf("init error reply: %v %q", r.headers, r.data)
	}

	r = request("busybroken", "")
	if r.headers["Nats-Service-Error-Code"] != "500" || !strings.Contains(string(r.data), "StateError") {
		t.Fatalf("init error behind other notices: %v %q", r.headers, r.data)
	}

	// Keep-warm: the stop notice ends the worker's loop.
	if r := request("brief", ""); string(r.data) != "Hello, lambda world!" {
		t.Fatalf("brief answered %q", r.data)
	}
	testutil.WaitFor(t, 10*time.Second, "the idle worker to stop", func() bool {
		_, warm, _ := m.Stats("brief")
		return warm == 0
	})
}

// mimicManager starts a broker and a real lambdas.Manager on it, builds
// dartmimic, and opens the apps bucket (a deployed spec is stored there too,
// as after a push).
func mimicManager(t *testing.T) (*broker.Broker, *lambdas.Manager, string, jetstream.KeyValue) {
	t.Helper()
	b := testutil.StartBroker(t)
	m, err := lambdas.New(testutil.Connect(t, b.NATSURL()), lambdas.WithNodeID("n1"), lambdas.WithStopGrace(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	bin := testutil.BuildGo(t, "./clientsdk/dart/internal/dartmimic")
	js, _ := jetstream.New(testutil.Connect(t, b.NATSURL()))
	apps, err := js.KeyValue(context.Background(), clientsdk.AppsBucket)
	if err != nil {
		t.Fatal(err)
	}
	return b, m, bin, apps
}
