package lambdas_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

// FuzzRuntimeAPI drives the real Runtime API of a real Manager, playing the
// runtime of a real worker process (a shell that only sleeps): per input an
// invocation with an arbitrary event over NATS, GET …/next, then a response,
// an error (headers or trailers) or an init error with the right or an
// arbitrary request id and body, and a request to an arbitrary path. No
// panic, only documented statuses, AWS-style error bodies; the event and a
// response body arrive unchanged; an accepted error reaches the caller as a
// 500. Seeds: testdata/fuzz/FuzzRuntimeAPI.
func FuzzRuntimeAPI(f *testing.F) {
	r := newRig(f)
	kw := clientsdk.Duration(clientsdk.MaxKeepWarm)
	apiFile := r.deployPuppet(spec(f, "fz", 1, func(l *clientsdk.LambdaSpec) {
		l.MaxWorkers, l.Timeout, l.KeepWarm = 1, clientsdk.Duration(clientsdk.MaxLambdaTimeout), &kw
	}))
	f.Add([]byte(`{"name":"Ada"}`), uint8(0), "", []byte(`"ok"`), "", "w/x/2018-06-01/runtime/invocation/next")
	f.Add([]byte(strings.Repeat("e", 5000)), uint8(1), "", []byte(`{"errorMessage":"boom","errorType":"Boom"}`), "Boom", "")
	f.Add([]byte{}, uint8(2), "id", []byte("partial"), "Runtime.Stream", "/w/../x")
	f.Add([]byte("x"), uint8(3), "", []byte(`{"errorMessage":"init"}`), "", "2018-06-01/runtime/init/error")
	f.Add([]byte("y"), uint8(4), "not-the-id", []byte("z"), "", "%2e%2e")
	f.Fuzz(func(t *testing.T, event []byte, op uint8, id string, body []byte, errType, path string) {
		replies := make(chan *nats.Msg, 1)
		sub, err := r.client.ChanSubscribe(nats.NewInbox(), replies)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := r.client.PublishRequest(clientsdk.LambdaSubject("fz"), sub.Subject, event); err != nil {
			t.Fatal(err)
		}
		base := workerBase(t, apiFile)
		reqID := getNext(t, base, event)
		if op&4 == 0 || id == "" {
			id = reqID
		}
		errType = strings.Map(func(c rune) rune { return min(max(c, ' '), '~') }, errType)
		code := fuzzPost(t, base, op%4, id, body, errType)
		switch {
		case id != reqID:
			// 400 or 403; 404 when the id makes a path no route takes
			// ("..", "/"). Never accepted.
			if code != 400 && code != 403 && code != 404 {
				t.Fatalf("post for the unknown request id %q: %d", id, code)
			}
		case op%4 == 3:
			if code != 403 {
				t.Fatalf("init/error after the first GET next: %d, want 403", code)
			}
		default:
			wantReply(t, replies, op%4, code, body)
		}
		fuzzPath(t, base, path)
	})
}

// fuzzPost posts a response (op 0), an error (1), a response whose stream
// failed, in trailers (2), or an init error (3), and returns the status.
func fuzzPost(t *testing.T, base string, op uint8, id string, body []byte, errType string) int {
	path := "invocation/" + url.PathEscape(id) + "/response"
	switch op {
	case 1:
		path = "invocation/" + url.PathEscape(id) + "/error"
	case 3:
		path = "init/error"
	}
	req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
	if op == 2 {
		req.Body = io.NopCloser(bytes.NewReader(body)) // unknown length: chunked, with trailers
		req.ContentLength = -1
		req.Trailer = http.Header{lambdas.HeaderFunctionErrType: {errType + "x"}}
	} else if errType != "" {
		req.Header.Set(lambdas.HeaderFunctionErrType, errType)
	}
	return doChecked(t, req)
}

// wantReply checks what the caller got for an accepted response or error.
func wantReply(t *testing.T, replies chan *nats.Msg, op uint8, code int, body []byte) {
	if code != 202 && !(op == 0 && code == 413) {
		t.Fatalf("post of the current invocation: %d, want 202", code)
	}
	var msg *nats.Msg
	select {
	case msg = <-replies:
	case <-time.After(10 * time.Second):
		t.Fatal("the caller got no reply")
	}
	e := clientsdk.ErrorFromMsg(msg)
	switch {
	case op == 0 && code == 202:
		if e != nil || !bytes.Equal(msg.Data, body) {
			t.Fatalf("the caller got %v %q, want the response %q", e, msg.Data, body)
		}
	case e == nil || e.Code/100 != 4 && e.Code != 500:
		t.Fatalf("the caller of a failed invocation got %v %q", e, msg.Data)
	}
}

// fuzzPath sends GET and POST to an arbitrary path under the worker's base
// (with the worker id replaced, so that it cannot take an invocation).
func fuzzPath(t *testing.T, base, path string) {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/w/not-a-worker/" + strings.TrimPrefix(path, "/")
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		req, err := http.NewRequest(m, u.String(), strings.NewReader("x"))
		if err != nil {
			continue
		}
		req.Host = u.Host
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", m, u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !slices.Contains(runtimeStatuses, resp.StatusCode) || resp.StatusCode == 200 || resp.StatusCode == 202 {
			t.Fatalf("%s %s: status %d: %s", m, u, resp.StatusCode, b)
		}
	}
}
