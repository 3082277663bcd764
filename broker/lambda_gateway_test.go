package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	helloPkg = "./internal/testutil/workers/lambdahello"
	apigwPkg = "./internal/testutil/workers/lambdaapigw"
)

// lambdaRig is a broker with its lambda router, a Manager standing in for a
// runner, and the apps bucket to put specs in.
type lambdaRig struct {
	t    *testing.T
	b    *broker.Broker
	m    *lambdas.Manager
	apps jetstream.KeyValue
	nc   *nats.Conn
}

func newLambdaRig(t *testing.T) *lambdaRig {
	t.Helper()
	return newLambdaRigOn(t, testutil.StartBroker(t)) // Start starts the lambda router too
}

// newLambdaRigOn makes a rig of broker b, connecting with opts (credentials).
func newLambdaRigOn(t *testing.T, b *broker.Broker, connOpts ...nats.Option) *lambdaRig {
	t.Helper()
	return newLambdaRigWith(t, b, nil, connOpts...)
}

// newLambdaRigWith is newLambdaRigOn with more options for the Manager.
func newLambdaRigWith(t *testing.T, b *broker.Broker, lopts []lambdas.Option, connOpts ...nats.Option) *lambdaRig {
	t.Helper()
	nc := testutil.Connect(t, b.NATSURL(), connOpts...)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	apps, err := js.KeyValue(context.Background(), clientsdk.AppsBucket)
	if err != nil {
		t.Fatal(err)
	}
	opts := []lambdas.Option{lambdas.WithNodeID("n1"), lambdas.WithStopGrace(500 * time.Millisecond)}
	if testing.Verbose() {
		opts = append(opts, lambdas.WithLogger(testutil.TestLogger(t)))
	}
	m, err := lambdas.New(testutil.Connect(t, b.NATSURL(), connOpts...), append(opts, lopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return &lambdaRig{t: t, b: b, m: m, apps: apps, nc: nc}
}

// put stores an app spec in the apps bucket and returns it with defaults.
func (r *lambdaRig) put(name string, kind clientsdk.Kind, mod func(*clientsdk.LambdaSpec)) clientsdk.AppSpec {
	r.t.Helper()
	s := clientsdk.AppSpec{Name: name, Kind: kind, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"}}
	if kind == clientsdk.KindLambda {
		s.Lambda = &clientsdk.LambdaSpec{}
		if mod != nil {
			mod(s.Lambda)
		}
	}
	s = s.WithDefaults()
	b, _ := json.Marshal(s)
	rev, err := r.apps.Put(context.Background(), name, b)
	if err != nil {
		r.t.Fatal(err)
	}
	s.Revision = rev
	return s
}

// host puts the spec and deploys the Go bootstrap pkg for it.
func (r *lambdaRig) host(name, pkg string, mod func(*clientsdk.LambdaSpec)) {
	r.t.Helper()
	s := r.put(name, clientsdk.KindLambda, mod)
	if err := r.m.Deploy(s, lambdas.Command{Path: testutil.BuildGo(r.t, pkg)}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *lambdaRig) do(method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.b.HTTPURL()+path, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// The same aws-lambda-go bootstrap answers `nats req` and HTTP.
func TestLambdaGatewayHello(t *testing.T) {
	r := newLambdaRig(t)
	r.host("hello", helloPkg, nil)
	resp, body := r.do("GET", "/hello", nil, nil)
	if resp.StatusCode != 200 || string(body) != "Hello, world!" {
		t.Fatalf("GET /hello: %d %q", resp.StatusCode, body)
	}
	out, err := exec.Command(testutil.NATSCLI(t), "--server", r.b.NATSURL(), "req", "lambda.hello", "nats", "--raw").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "Hello, nats!" {
		t.Fatalf("nats req lambda.hello: %v %q", err, out)
	}
}

// An API Gateway-typed handler gets the method, path, query, headers and
// body; its proxy response becomes the HTTP response.
func TestLambdaGatewayAPIGatewayEvent(t *testing.T) {
	r := newLambdaRig(t)
	r.host("echo", apigwPkg, nil)
	resp, body := r.do("POST", "/echo/some/path?x=1&x=2&y=z", []byte("hi there"), map[string]string{"X-Test": "abc"})
	if resp.StatusCode != 201 || resp.Header.Get("X-Echo") != "yes" || len(resp.Header.Values("Set-Cookie")) != 2 {
		t.Fatalf("POST /echo: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	q, _ := got["query"].(map[string]any)
	mq, _ := got["multi_query"].(map[string]any)
	h, _ := got["headers"].(map[string]any)
	if got["method"] != "POST" || got["path"] != "/some/path" || got["body"] != "hi there" || got["is_base64"] != false ||
		q["y"] != "z" || q["x"] != "2" || len(mq["x"].([]any)) != 2 || h["X-Test"] != "abc" || got["source_ip"] != "127.0.0.1" {
		t.Fatalf("the handler saw %s", body)
	}
	// A binary body arrives base64-encoded.
	_, body = r.do("PUT", "/echo", []byte{0xff, 0xfe, 0x00}, nil)
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got["is_base64"] != true {
		t.Fatalf("binary body: %s", body)
	}
}

// ALB and raw events.
func TestLambdaGatewayALBAndRaw(t *testing.T) {
	r := newLambdaRig(t)
	r.host("alb", apigwPkg, func(l *clientsdk.LambdaSpec) { l.HTTPEvent = clientsdk.HTTPEventALB })
	r.host("raw", helloPkg, func(l *clientsdk.LambdaSpec) { l.HTTPEvent = clientsdk.HTTPEventRaw })
	resp, body := r.do("GET", "/alb/p?k=v", nil, map[string]string{"X-Test": "abc"})
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%d %v: %s", resp.StatusCode, err, body)
	}
	h, _ := got["headers"].(map[string]any)
	q, _ := got["query"].(map[string]any)
	if resp.StatusCode != 201 || got["method"] != "GET" || got["path"] != "/p" || h["x-test"] != "abc" || q["k"] != "v" {
		t.Fatalf("ALB handler saw %s", body)
	}
	resp, body = r.do("POST", "/raw", []byte("bob"), nil)
	if resp.StatusCode != 200 || string(body) != "Hello, bob!" {
		t.Fatalf("raw: %d %q", resp.StatusCode, body)
	}
}

// Errors map to HTTP statuses: 404 unknown, 403 daemon, 503 not hosted,
// 500 function error, 504 timeout, 413 too large.
func TestLambdaGatewayErrors(t *testing.T) {
	r := newLambdaRig(t)
	r.put("daemon", clientsdk.KindDaemon, nil)
	r.put("orphan", clientsdk.KindLambda, nil)
	r.host("raw", helloPkg, func(l *clientsdk.LambdaSpec) { l.HTTPEvent = clientsdk.HTTPEventRaw })
	r.host("slow", helloPkg, func(l *clientsdk.LambdaSpec) {
		l.HTTPEvent = clientsdk.HTTPEventRaw
		l.Timeout = clientsdk.Duration(300 * time.Millisecond)
	})
	for _, c := range []struct {
		path, body string
		code       int
		typ        string
	}{
		{"/nope", "", 404, "NotFound"},
		{"/daemon", "", 403, "NotALambda"},
		{"/orphan", "", 503, "NoRunner"},
		{"/raw", `{"error":"bad"}`, 500, "HelloError"},
		{"/slow", `{"sleep_ms":5000}`, 504, lambdas.TypeTimedOut},
		{"/raw", `{"huge":6291656}`, 413, lambdas.TypeTooLarge},
		{"/raw", `{"reply":{"statusCode":101,"body":"upgrade?"}}`, 502, "InvalidResponse"},
		{"/raw", `{"reply":{"statusCode":103,"body":"hints"}}`, 502, "InvalidResponse"},
	} {
		resp, body := r.do("POST", c.path, []byte(c.body), nil)
		var e clientsdk.Error
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode != c.code || e.Type != c.typ {
			t.Errorf("POST %s %s: %d %s, want %d %s", c.path, c.body, resp.StatusCode, body, c.code, c.typ)
		}
	}
	// Request bodies over 6 MiB, or whose event would not fit in a NATS
	// message (binary bodies grow in base64), are 413.
	for _, n := range []int{6<<20 + 1, 6<<20 - 10} {
		resp, body := r.do("POST", "/echo-binary", bytes.Repeat([]byte{0xff}, n), nil)
		_ = body
		if resp.StatusCode != 404 {
			t.Fatalf("unknown name with a big body: %d", resp.StatusCode)
		}
	}
	r.put("big", clientsdk.KindLambda, nil)
	for _, n := range []int{6<<20 + 1, 6<<20 - 10} {
		resp, body := r.do("POST", "/big", bytes.Repeat([]byte{0xff}, n), nil)
		if resp.StatusCode != 413 {
			t.Errorf("binary body of %d bytes: %d %s", n, resp.StatusCode, body)
		}
	}
}

// No dartup server subscribes lambda.NAME: a request nobody takes gets "no
// responders" at once (the stock `nats req` says so), and
// dartup.lambda.why.NAME, the gateway and clientsdk's Invoke say why: 404
// unknown, 403 a daemon, 503 no runner or stopped. A hosted lambda gets
// exactly one reply.
func TestLambdaNoResponders(t *testing.T) {
	r := newLambdaRig(t)
	r.put("daemon", clientsdk.KindDaemon, nil)
	r.put("orphan", clientsdk.KindLambda, nil)
	r.putStopped("off")
	r.host("hello", helloPkg, nil)
	natsBin := testutil.NATSCLI(t)
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithConn(r.nc))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]clientsdk.Error{"unknown": {Code: 404, Type: "NotFound"}, "daemon": {Code: 403, Type: "NotALambda"},
		"orphan": {Code: 503, Type: "NoRunner"}, "off": {Code: 503, Type: "Stopped"}} {
		out, _ := exec.Command(natsBin, "--server", r.b.NATSURL(), "req", "lambda."+name, "x").CombinedOutput()
		if !strings.Contains(strings.ToLower(string(out)), "no responders") {
			t.Errorf("nats req lambda.%s printed:\n%s", name, out)
		}
		out, _ = exec.Command(natsBin, "--server", r.b.NATSURL(), "req", clientsdk.LambdaWhySubject(name), "").CombinedOutput()
		if !strings.Contains(string(out), strconv.Itoa(want.Code)) {
			t.Errorf("nats req %s printed:\n%s", clientsdk.LambdaWhySubject(name), out)
		}
		start := time.Now()
		if _, err := r.nc.Request("lambda."+name, nil, 5*time.Second); !errors.Is(err, nats.ErrNoResponders) || time.Since(start) > 2*time.Second {
			t.Errorf("lambda.%s: %v after %s, want no responders at once", name, err, time.Since(start))
		}
		var e *clientsdk.Error
		if _, err := c.Invoke(context.Background(), name, nil); !errors.As(err, &e) || e.Code != want.Code || e.Type != want.Type || e.Message == "" {
			t.Errorf("Invoke(%s) = %v, want %d %s", name, err, want.Code, want.Type)
		}
		resp, body := r.do("POST", "/"+name, nil, nil)
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != want.Code || e.Type != want.Type {
			t.Errorf("POST /%s: %d %s, want %d %s", name, resp.StatusCode, body, want.Code, want.Type)
		}
	}
	// A hosted lambda: why answers with no error (send it again).
	if m, err := r.nc.Request(clientsdk.LambdaWhySubject("hello"), nil, 5*time.Second); err != nil || clientsdk.ErrorFromMsg(m) != nil {
		t.Fatalf("why of a hosted lambda: %v %v", err, clientsdk.ErrorFromMsg(m))
	}
	// Count replies to a hosted lambda: exactly one.
	inbox := nats.NewInbox()
	replies, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.nc.PublishRequest("lambda.hello", inbox, []byte("once")); err != nil {
		t.Fatal(err)
	}
	m, err := replies.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != "Hello, once!" {
		t.Fatalf("reply: %v %v", m, err)
	}
	// A second reply would arrive right behind the first; a ping round trip
	// through the server makes sure nothing else is on its way.
	if _, err := r.nc.Request("lambda.hello", []byte("flush"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := replies.Pending(); n != 0 {
		t.Fatalf("%d more replies to one request", n)
	}
}

// putStopped stores a killed lambda's spec.
func (r *lambdaRig) putStopped(name string) {
	r.t.Helper()
	s := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"},
		Lambda: &clientsdk.LambdaSpec{}, Stopped: true}.WithDefaults()
	b, _ := json.Marshal(s)
	if _, err := r.apps.Put(context.Background(), name, b); err != nil {
		r.t.Fatal(err)
	}
}

// A full queue answers HTTP 429 at once.
func TestLambdaGatewayThrottle(t *testing.T) {
	r := newLambdaRig(t)
	r.host("busy", helloPkg, func(l *clientsdk.LambdaSpec) {
		l.HTTPEvent = clientsdk.HTTPEventRaw
		l.MaxWorkers = 1
		l.Queue = 1
	})
	codes := make(chan int, 5)
	for i := 0; i < 5; i++ {
		go func() {
			resp, err := http.Post(r.b.HTTPURL()+"/busy", "application/json", strings.NewReader(`{"sleep_ms":500}`))
			if err != nil {
				codes <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	got := map[int]int{}
	for i := 0; i < 5; i++ {
		got[<-codes]++
	}
	if got[200] != 2 || got[429] != 3 {
		t.Fatalf("statuses %v, want 2×200 (1 running, 1 queued) and 3×429", got)
	}
}

// A name found missing is remembered for a moment (a flood of requests for
// it costs one bucket read), and a lambda pushed under it is found at once.
func TestLambdaMissingNameThenPushed(t *testing.T) {
	r := newLambdaRig(t)
	for range 50 {
		if resp, _ := r.do("GET", "/later", nil, nil); resp.StatusCode != 404 {
			t.Fatalf("unknown name: %d", resp.StatusCode)
		}
	}
	r.host("later", helloPkg, func(l *clientsdk.LambdaSpec) { l.HTTPEvent = clientsdk.HTTPEventRaw })
	testutil.WaitFor(t, 10*time.Second, "the pushed lambda to answer", func() bool {
		resp, _ := r.do("POST", "/later", []byte(`{"name":"again"}`), nil)
		return resp.StatusCode == 200
	})
}
