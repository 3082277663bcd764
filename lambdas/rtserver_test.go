package lambdas_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

// rawRuntime is a raw TCP connection to a puppet worker's Runtime API: the
// test writes the bytes a runtime would and reads the answers as they come.
type rawRuntime struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	path string // "/w/SECRET/2018-06-01/runtime/"
}

func dialRuntime(t *testing.T, base string) *rawRuntime {
	t.Helper()
	hostPath := strings.TrimPrefix(base, "http://")
	host, path, _ := strings.Cut(hostPath, "/")
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawRuntime{t: t, c: c, r: bufio.NewReader(c), path: "/" + path}
}

func (rr *rawRuntime) send(s string) {
	rr.t.Helper()
	if _, err := io.WriteString(rr.c, s); err != nil {
		rr.t.Fatal(err)
	}
}

// answer reads one answer; ok is false when the connection ended first.
func (rr *rawRuntime) answer() (resp *http.Response, body string, ok bool) {
	return rr.answerTo("GET")
}

// answerTo reads the answer to a request of method (HEAD's has no body).
func (rr *rawRuntime) answerTo(method string) (resp *http.Response, body string, ok bool) {
	resp, err := http.ReadResponse(rr.r, &http.Request{Method: method})
	if err != nil {
		return nil, "", false
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), true
}

// closed reports whether the server closed the connection (EOF).
func (rr *rawRuntime) closed() bool {
	_, err := rr.r.ReadByte()
	return err == io.EOF
}

// invokeAsync publishes a request on lambda.NAME and returns where its
// reply arrives.
func invokeAsync(t *testing.T, r *rig, name string, event []byte) chan *nats.Msg {
	t.Helper()
	replies := make(chan *nats.Msg, 1)
	sub, err := r.client.ChanSubscribe(nats.NewInbox(), replies)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := r.client.PublishRequest(clientsdk.LambdaSubject(name), sub.Subject, event); err != nil {
		t.Fatal(err)
	}
	return replies
}

func reply(t *testing.T, replies chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-replies:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("the caller got no reply")
	}
	return nil
}

// puppetInvoked deploys a puppet lambda name (the test is its runtime),
// invokes it with event and takes the event with GET …/next: it returns
// the rig, where the caller's reply comes, the worker's base URL, the
// request id, and a raw connection to the worker's Runtime API.
func puppetInvoked(t *testing.T, name string, event []byte) (*rig, chan *nats.Msg, string, string, *rawRuntime) {
	t.Helper()
	r := newRig(t)
	apiFile := r.deployPuppet(spec(t, name, 1, nil))
	replies := invokeAsync(t, r, name, event)
	base := workerBase(t, apiFile)
	id := getNext(t, base, event)
	return r, replies, base, id, dialRuntime(t, base)
}

// The Runtime API's server reads what HTTP/1.1 runtimes send: a chunked
// response with the error in trailers (aws-lambda-go), Expect:
// 100-continue (curl), two requests in one write, HTTP/1.0, and it answers
// each request once, in order, with Content-Length and one write.
func TestRuntimeAPIWire(t *testing.T) {
	r := newRig(t)
	apiFile := r.deployPuppet(spec(t, "wire", 1, nil))
	first := invokeAsync(t, r, "wire", []byte("e1"))
	rr := dialRuntime(t, workerBase(t, apiFile))
	next := "GET " + rr.path + "invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"

	// A chunked response with a trailer that says the function failed.
	rr.send(next)
	resp, body, _ := rr.answer()
	id := resp.Header.Get(lambdas.HeaderRequestID)
	if resp.StatusCode != 200 || body != "e1" || resp.ContentLength != 2 || resp.Header.Get(lambdas.HeaderTraceID) == "" ||
		resp.Header.Get(lambdas.HeaderFunctionARN) != "arn:aws:lambda:us-east-1:000000000000:function:wire" {
		t.Fatalf("GET next: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	rr.send("POST " + rr.path + "invocation/" + id + "/response HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" +
		"Trailer: Lambda-Runtime-Function-Error-Type\r\n\r\n3;x=y\r\npar\r\n4\r\ntial\r\n0\r\n" +
		"Lambda-Runtime-Function-Error-Type: Stream.Broke\r\n\r\n")
	if resp, body, _ := rr.answer(); resp.StatusCode != 202 || body != `{"status":"OK"}` {
		t.Fatalf("chunked response: %d %q", resp.StatusCode, body)
	}
	if e := clientsdk.ErrorFromMsg(reply(t, first)); e == nil || e.Code != 500 || e.Type != "Stream.Broke" {
		t.Fatalf("the caller of a response whose stream broke got %v", e)
	}

	// Expect: 100-continue, then a response sent with GET next in one write.
	second := invokeAsync(t, r, "wire", []byte("e2"))
	rr.send(next)
	resp, _, _ = rr.answer()
	id = resp.Header.Get(lambdas.HeaderRequestID)
	third := invokeAsync(t, r, "wire", []byte("e3"))
	rr.send("POST " + rr.path + "invocation/" + id + "/response HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	if resp, _, _ := rr.answer(); resp.StatusCode != 100 {
		t.Fatalf("Expect: 100-continue answered %d", resp.StatusCode)
	}
	rr.send("hello" + next)
	if resp, _, _ := rr.answer(); resp.StatusCode != 202 {
		t.Fatalf("response after 100 Continue: %d", resp.StatusCode)
	}
	if m := reply(t, second); string(m.Data) != "hello" {
		t.Fatalf("the caller got %q", m.Data)
	}
	resp, body, _ = rr.answer()
	if resp.StatusCode != 200 || body != "e3" {
		t.Fatalf("pipelined GET next: %d %q", resp.StatusCode, body)
	}
	id = resp.Header.Get(lambdas.HeaderRequestID)

	// HTTP/1.0: answered, then the connection is closed.
	errBody := `{"errorMessage":"it broke","errorType":""}`
	rr.send("POST " + rr.path + "invocation/" + id + "/error HTTP/1.0\r\nContent-Length: " + strconv.Itoa(len(errBody)) + "\r\n" +
		lambdas.HeaderFunctionErrType + ": Boom\r\n\r\n" + errBody)
	if resp, _, _ := rr.answer(); resp.StatusCode != 202 || !resp.Close {
		t.Fatalf("HTTP/1.0 error post: %d close=%v", resp.StatusCode, resp.Close)
	}
	if !rr.closed() {
		t.Fatal("the HTTP/1.0 connection stayed open")
	}
	if e := clientsdk.ErrorFromMsg(reply(t, third)); e == nil || e.Type != "Boom" || e.Message != "it broke" {
		t.Fatalf("the caller of a failed invocation got %v", e)
	}
}

// Requests that do not parse get 400 and a closed connection; other
// routes, methods and unclean paths 404 with an AWS error body (HEAD
// without it); a body over 6 MiB is 413 for the runtime and the caller.
func TestRuntimeAPIRefusals(t *testing.T) {
	_, replies, base, id, rr := puppetInvoked(t, "refuse", []byte("x"))
	for _, tc := range []struct {
		name, req string
		code      int
		closes    bool
	}{
		{"unknown route", "GET " + rr.path + "invocation/nope HTTP/1.1\r\n\r\n", 404, false},
		{"wrong method", "POST " + rr.path + "invocation/next HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 404, false},
		{"dot segment", "GET " + rr.path + "invocation/../invocation/next HTTP/1.1\r\n\r\n", 404, false},
		{"empty segment", "GET " + strings.Replace(rr.path, "/2018", "//2018", 1) + "invocation/next HTTP/1.1\r\n\r\n", 404, false},
		{"unknown worker", "GET /w/0123/2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n", 404, false},
		{"unknown id", "POST " + rr.path + "invocation/other/response HTTP/1.1\r\nContent-Length: 2\r\n\r\nok", 400, false},
		{"absolute form", "GET http://x" + rr.path + "invocation/nope?q=1 HTTP/1.1\r\n\r\n", 404, false},
		{"body on an unknown route", "POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 404, true},
		{"no version", "GET " + rr.path + "invocation/next\r\n\r\n", 400, true},
		{"HTTP/2", "GET / HTTP/2.0\r\n\r\n", 400, true},
		{"folded header", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, true},
		{"two lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, true},
		{"length and chunked", "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, true},
		{"gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, true},
		{"long line", "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\n\r\n", 400, true},
		{"bad escape", "POST " + rr.path + "invocation/%zz/response HTTP/1.1\r\n\r\n", 400, true},
		{"bad chunk", "POST " + rr.path + "invocation/" + id + "/response HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rr.c == nil || tc.closes {
				rr = dialRuntime(t, base)
			}
			rr.send(tc.req)
			resp, body, ok := rr.answer()
			if !ok || resp.StatusCode != tc.code || !strings.Contains(body, `"errorType"`) {
				t.Fatalf("answered %v %q", resp, body)
			}
			if tc.closes && !rr.closed() {
				t.Fatal("the connection stayed open")
			}
		})
	}
	rr = dialRuntime(t, base)
	rr.send("HEAD " + rr.path + "invocation/next HTTP/1.1\r\n\r\n")
	if resp, body, _ := rr.answerTo("HEAD"); resp.StatusCode != 404 || body != "" {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	rr.send("POST " + rr.path + "invocation/" + id + "/response HTTP/1.1\r\nContent-Length: " + strconv.Itoa(lambdas.MaxResponseBytes+1) + "\r\n\r\n")
	if resp, _, _ := rr.answer(); resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("a response over the limit: %d", resp.StatusCode)
	}
	if e := clientsdk.ErrorFromMsg(reply(t, replies)); e == nil || e.Code != 413 {
		t.Fatalf("the caller of a response over the limit got %v", e)
	}
}

// A runtime that hangs up while its GET /next waits gives the event back:
// the event that comes later goes to the next GET /next, not to the
// connection that is gone (whose caller would get a 502).
func TestRuntimeAPIHangUpWhileWaiting(t *testing.T) {
	r, first, base, id, rr := puppetInvoked(t, "hang", []byte("a"))
	rr.send("POST " + rr.path + "invocation/" + id + "/response HTTP/1.1\r\nContent-Length: 1\r\n\r\nA")
	if resp, _, _ := rr.answer(); resp.StatusCode != 202 {
		t.Fatalf("response: %d", resp.StatusCode)
	}
	reply(t, first)
	for i := range 3 {
		rr.send("GET " + rr.path + "invocation/next HTTP/1.1\r\n\r\n")
		rr.c.Close()
		// Nothing outside the Manager shows that it saw the hang-up (the
		// worker leaves its idle list): give it a moment. Without the
		// hang-up seen, the event below would go to the closed connection.
		time.Sleep(200 * time.Millisecond)
		rr = dialRuntime(t, base)
		event := fmt.Sprintf("event %d", i)
		replies := invokeAsync(t, r, "hang", []byte(event))
		rr.send("GET " + rr.path + "invocation/next HTTP/1.1\r\n\r\n")
		resp, body, _ := rr.answer()
		if resp.StatusCode != 200 || body != event {
			t.Fatalf("GET next after a hang-up: %d %q", resp.StatusCode, body)
		}
		rr.send("POST " + rr.path + "invocation/" + resp.Header.Get(lambdas.HeaderRequestID) + "/response HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
		if resp, _, _ := rr.answer(); resp.StatusCode != 202 {
			t.Fatalf("response: %d", resp.StatusCode)
		}
		if m := reply(t, replies); clientsdk.ErrorFromMsg(m) != nil || string(m.Data) != "ok" {
			t.Fatalf("the caller got %v %q", clientsdk.ErrorFromMsg(m), m.Data)
		}
	}
}

// A connection that never names a worker (another local user's: the port
// is on loopback) is closed after 10 s without a complete request, so that
// slow requests cannot hold connections for long; a worker's connection
// waits for its next request much longer.
func TestRuntimeAPIStrangerTimeout(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	apiFile := r.deployPuppet(spec(t, "slowloris", 1, nil))
	invokeAsync(t, r, "slowloris", []byte("x"))
	base := workerBase(t, apiFile)
	stranger, worker := dialRuntime(t, base), dialRuntime(t, base)
	stranger.send("GET /w/nobody/2018-06-01/runtime/invocation/next HTTP/1.1\r\nX-Slow: ")
	worker.send("GET " + worker.path + "invocation/next HTTP/1.1\r\n\r\n")
	if resp, body, _ := worker.answer(); resp.StatusCode != 200 || body != "x" {
		t.Fatalf("GET next: %d %q", resp.StatusCode, body)
	}
	start := time.Now()
	if !stranger.closed() {
		t.Fatal("the stranger's connection was not closed")
	}
	if took := time.Since(start); took < 5*time.Second || took > 15*time.Second {
		t.Fatalf("the stranger's connection was closed after %s, want about 10 s", took)
	}
	worker.send("GET " + worker.path + "invocation/nope HTTP/1.1\r\n\r\n") // still open
	if resp, _, ok := worker.answer(); !ok || resp.StatusCode != 404 {
		t.Fatalf("the worker's connection after 10 s: %v", resp)
	}
}

// A stranger that pipelines requests and never reads their answers cannot
// hold the connection past the stranger timeout either: the server's
// blocked write gives up and the connection is closed.
func TestRuntimeAPIStrangerNeverReads(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	apiFile := r.deployPuppet(spec(t, "deaf", 1, nil))
	invokeAsync(t, r, "deaf", []byte("x"))
	stranger := dialRuntime(t, workerBase(t, apiFile))
	requests := strings.Repeat("GET /nowhere HTTP/1.1\r\n\r\n", 1000)
	_ = stranger.c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	for { // until the server stops reading: its answers fill the buffers
		if _, err := io.WriteString(stranger.c, requests); err != nil {
			break
		}
	}
	time.Sleep(12 * time.Second) // past the stranger timeout, reading nothing
	_ = stranger.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, stranger.r)
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server still writes to a stranger that has read nothing for 12 s")
	}
}
