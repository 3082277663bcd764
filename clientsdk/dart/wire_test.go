package dart_test

// Replays of docs/protocol.md against the real Go side. The Dart code cannot
// run here (no Dart compiler), so these tests speak its bytes: the NATS
// protocol lines of DartUp on a raw TCP connection, next to Go instances
// using clientsdk/app, and runLambda's HTTP exchanges through
// internal/dartmimic, a Go bootstrap that sends them byte for byte, hosted by
// the real lambdas.Manager and invoked by raw NATS lines.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/clientsdk/app"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

// connectLine is the CONNECT of docs/protocol.md 4.1 for instance chat.0,
// without credentials (the test broker has no auth).
const connectLine = `CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":"dartup-dart/0.1.0 chat.0","lang":"dart","version":"0.1.0","protocol":1,"echo":false,"headers":true,"no_responders":true}` + "\r\n"

// rawConn is a NATS connection that writes exactly what the Dart client
// writes and reads the server's bytes as they come.
type rawConn struct {
	t          *testing.T
	c          net.Conn
	r          *bufio.Reader
	handshaken bool
}

// dialDart does the handshake of docs/protocol.md 4.1 byte for byte.
func dialDart(t *testing.T, natsURL string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(natsURL, "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	info := rc.line()
	if !strings.HasPrefix(info, "INFO {") {
		t.Fatalf("first line %q is not INFO", info)
	}
	var fields struct {
		Headers    bool `json:"headers"`
		MaxPayload int  `json:"max_payload"`
		TLS        bool `json:"tls_required"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(info, "INFO ")), &fields); err != nil {
		t.Fatalf("INFO JSON: %v", err)
	}
	if !fields.Headers || fields.TLS || fields.MaxPayload <= 0 {
		t.Fatalf("INFO does not suit the Dart client (headers, no TLS, max_payload): %s", info)
	}
	rc.send(connectLine + "PING\r\n")
	rc.handshaken = true
	rc.expect("PONG")
	return rc
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// line reads one protocol line, answering server PINGs and skipping later
// INFOs and +OKs, as the Dart client does (nats-server sends an INFO with
// "connect_info":true after the handshake).
func (rc *rawConn) line() string {
	rc.t.Helper()
	for {
		_ = rc.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		s, err := rc.r.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("read: %v (got %q)", err, s)
		}
		if !strings.HasSuffix(s, "\r\n") {
			rc.t.Fatalf("line %q does not end with CRLF", s)
		}
		s = strings.TrimSuffix(s, "\r\n")
		if s == "PING" {
			rc.send("PONG\r\n")
			continue
		}
		if rc.handshaken && (strings.HasPrefix(s, "INFO ") || s == "+OK") {
			continue
		}
		return s
	}
}

func (rc *rawConn) expect(want string) {
	rc.t.Helper()
	if got := rc.line(); got != want {
		rc.t.Fatalf("got line %q, want %q", got, want)
	}
}

// payload reads n bytes and the CRLF after them.
func (rc *rawConn) payload(n int) []byte {
	rc.t.Helper()
	b := make([]byte, n+2)
	if _, err := io.ReadFull(rc.r, b); err != nil {
		rc.t.Fatal(err)
	}
	if string(b[n:]) != "\r\n" {
		rc.t.Fatalf("payload of %d bytes not followed by CRLF: %q", n, b)
	}
	return b[:n]
}

// reply is a MSG or HMSG as the Dart client parses it (docs/protocol.md 4.5).
type reply struct {
	op, subject, sid string
	status           string
	headers          map[string]string
	data             []byte
}

func (rc *rawConn) msg() reply {
	rc.t.Helper()
	ctl := rc.line()
	f := strings.Fields(ctl)
	var r reply
	switch {
	case len(f) == 4 && f[0] == "MSG":
		n, _ := strconv.Atoi(f[3])
		r = reply{op: "MSG", subject: f[1], sid: f[2], data: rc.payload(n)}
	case len(f) == 5 && f[0] == "HMSG":
		h, _ := strconv.Atoi(f[3])
		n, _ := strconv.Atoi(f[4])
		b := rc.payload(n)
		r = reply{op: "HMSG", subject: f[1], sid: f[2], headers: map[string]string{}, data: b[h:]}
		lines := strings.Split(string(b[:h]), "\r\n")
		if first := strings.Fields(lines[0]); len(first) > 1 {
			r.status = first[1]
		}
		for _, l := range lines[1:] {
			if k, v, ok := strings.Cut(l, ":"); ok {
				r.headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	default:
		rc.t.Fatalf("want MSG or HMSG (without reply subject), got %q", ctl)
	}
	return r
}

func goInstance(t *testing.T, url string, index int) (*app.Conn, *app.Subscription) {
	t.Helper()
	c := app.NewConn(testutil.Connect(t, url, nats.NoEcho()), app.Instance{App: "chat", Index: index, Node: "n1"})
	s, err := c.Subscribe(context.Background(), "greeting")
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func next(t *testing.T, s *app.Subscription) app.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Go instance did not receive: %v", err)
	}
	return m
}

// TestWireNATSPubSub replays DartUp.connect, subscribe, publish and
// unsubscribe (docs/protocol.md 4.1-4.4) as instance chat.0 next to Go
// instances chat.0 and chat.1.
func TestWireNATSPubSub(t *testing.T) {
	b := testutil.StartBroker(t)
	dart := dialDart(t, b.NATSURL())
	dart.send("SUB dartup.app.chat.greeting 1\r\nPING\r\n")
	dart.expect("PONG")
	g1, s1 := goInstance(t, b.NATSURL(), 1)
	_, s0 := goInstance(t, b.NATSURL(), 0) // another connection of the Dart side's own instance

	// publish('greeting', {'text': 'hi'}): the 48-byte HPUB of 4.3. The
	// PONG right after proves "echo":false: no HMSG of our own came first.
	dart.send("HPUB dartup.app.chat.greeting 35 48\r\nNATS/1.0\r\nDartup-Sender: chat.0\r\n\r\n{\"text\":\"hi\"}\r\nPING\r\n")
	dart.expect("PONG")
	if m := next(t, s1); m.From != "chat.0" || string(m.Data) != `{"text":"hi"}` {
		t.Fatalf("Go instance chat.1 got %+v", m)
	}

	// A Go publish reaches the Dart side as the HMSG of 4.4.
	if err := g1.Publish(context.Background(), "greeting", map[string]string{"text": "hello"}); err != nil {
		t.Fatal(err)
	}
	want := "NATS/1.0\r\nDartup-Sender: chat.1\r\n\r\n" + `{"text":"hello"}`
	dart.expect(fmt.Sprintf("HMSG dartup.app.chat.greeting 1 35 %d", len(want)))
	if got := string(dart.payload(len(want))); got != want {
		t.Fatalf("HMSG bytes %q, want %q", got, want)
	}
	// The Go instance with the Dart side's id skipped chat.0's message.
	if m := next(t, s0); m.From != "chat.1" {
		t.Fatalf("Go instance chat.0 got its own instance's message: %+v", m)
	}

	// UNSUB: nothing more arrives.
	dart.send("UNSUB 1\r\nPING\r\n")
	dart.expect("PONG")
	if err := g1.Publish(context.Background(), "greeting", "late"); err != nil {
		t.Fatal(err)
	}
	if err := g1.NATS().Flush(); err != nil {
		t.Fatal(err)
	}
	dart.send("PING\r\n")
	dart.expect("PONG")
}

// TestWireRuntimeAPI replays runLambda's HTTP exchanges (docs/protocol.md 2,
// via internal/dartmimic on the real Runtime API server with its /w/ID path
// prefix) and DartUp.request's NATS lines (4.6) against them.
func TestWireRuntimeAPI(t *testing.T) {
	b, m, bin, apps := mimicManager(t)
	deploy := func(name string, env ...string) {
		s := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand,
			Command: []string{"bootstrap"}, Lambda: &clientsdk.LambdaSpec{}, Revision: 1}.WithDefaults()
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := m.Deploy(s, lambdas.Command{Path: bin, Env: env}); err != nil {
			t.Fatal(err)
		}
		// The spec is in the apps bucket too, as after a push.
		spec, _ := json.Marshal(s)
		if _, err := apps.Put(context.Background(), name, spec); err != nil {
			t.Fatal(err)
		}
	}
	deploy("hello")
	deploy("broken", "DARTMIMIC_INIT_FAIL=1")

	const inbox = "_INBOX.Xf3kP9qL2mN8vB4wZ7yT1c"
	dart := dialDart(t, b.NATSURL())
	dart.send("SUB " + inbox + ".* 1\r\n")
	request := func(token int, lambda, data string) reply {
		t.Helper()
		dart.send(fmt.Sprintf("PUB lambda.%s %s.%d %d\r\n%s\r\n", lambda, inbox, token, len(data), data))
		r := dart.msg()
		if r.subject != fmt.Sprintf("%s.%d", inbox, token) || r.sid != "1" {
			t.Fatalf("reply on %s sid %s, want %s.%d sid 1", r.subject, r.sid, inbox, token)
		}
		return r
	}
	success := func(r reply) string {
		t.Helper()
		if r.headers["Nats-Service-Error-Code"] != "" || r.status != "" {
			t.Fatalf("want a success reply, got %s status %q headers %v body %q", r.op, r.status, r.headers, r.data)
		}
		t.Logf("success reply: %s headers %v", r.op, r.headers)
		return string(r.data)
	}

	// An unknown lambda: nothing subscribes lambda.nobody (no dartup server
	// does), so the server answers "no responders" at once (4.6): status
	// 503, the subject in Nats-Subject, no body.
	dart.send("PUB lambda.nobody " + inbox + ".1 2\r\nhi\r\n")
	nf := dart.msg()
	if nf.subject != inbox+".1" || nf.status != "503" || nf.headers["Nats-Subject"] != "lambda.nobody" || len(nf.data) != 0 {
		t.Fatalf("unknown lambda answered %s status %q headers %v body %q, want no responders", nf.op, nf.status, nf.headers, nf.data)
	}

	// A raw event (nats req lambda.hello ''): the body comes back as is (2.4).
	if got := success(request(2, "hello", "")); got != "Hello, lambda world!" {
		t.Fatalf("raw invocation answered %q", got)
	}

	// An API Gateway v1 event: the proxy response document of 2.4, byte for byte.
	ev := `{"resource":"/{proxy+}","path":"/hello","httpMethod":"GET","headers":{"Host":"localhost:2374"},` +
		`"queryStringParameters":{"name":"Ann"},"requestContext":{"requestId":"r-1"},"body":null,"isBase64Encoded":false}`
	want := `{"statusCode":200,"headers":{"content-type":"text/plain; charset=utf-8"},"body":"Hello, lambda world!","isBase64Encoded":false}`
	if got := success(request(3, "hello", ev)); got != want {
		t.Fatalf("API Gateway invocation answered %q, want %q", got, want)
	}
	// An ALB event adds statusDescription.
	alb := `{"httpMethod":"GET","path":"/hello","headers":{},"requestContext":{"elb":{"targetGroupArn":"arn:t"}},"body":"","isBase64Encoded":false}`
	wantALB := `{"statusCode":200,"statusDescription":"200 OK","headers":{"content-type":"text/plain; charset=utf-8"},"body":"Hello, lambda world!","isBase64Encoded":false}`
	if got := success(request(4, "hello", alb)); got != wantALB {
		t.Fatalf("ALB invocation answered %q, want %q", got, wantALB)
	}

	// A throwing handler: POST …/error becomes the service error of 4.6.
	r := request(5, "hello", "throw")
	if r.op != "HMSG" || r.headers["Nats-Service-Error-Code"] != "500" {
		t.Fatalf("error reply: %s headers %v body %q", r.op, r.headers, r.data)
	}
	var e clientsdk.Error
	if err := json.Unmarshal(r.data, &e); err != nil {
		t.Fatalf("error body %q: %v", r.data, err)
	}
	if e.Code != 500 || e.Type != "StateError" || e.Message != "Bad state: boom" {
		t.Fatalf("error body %q decodes to %+v; the Dart side reads code/errorType/errorMessage", r.data, e)
	}
	// The worker survived its handler's error: the loop went on.
	if got := success(request(6, "hello", "")); got != "Hello, lambda world!" {
		t.Fatalf("after an error the lambda answered %q", got)
	}

	// init/error: the first invocation gets the init error.
	r = request(7, "broken", "")
	code, _ := strconv.Atoi(r.headers["Nats-Service-Error-Code"])
	if r.op != "HMSG" || code < 500 {
		t.Fatalf("init error reply: %s headers %v body %q", r.op, r.headers, r.data)
	}
	if !strings.Contains(string(r.data), "init failed") {
		t.Errorf("init error reply does not carry the init error's message: %q", r.data)
	}
	t.Logf("init error reply: %v %s", r.headers, r.data)
}
