package lambdas_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

// Connections that name no worker (any local user can open them) are
// bounded: one more than lambdas.RTMaxAllStrangers closes the oldest, and
// once they have been open lambdas.RTStrangerGrace, one more closes the
// old ones beyond lambdas.RTMaxStrangers; the others keep working, and a
// worker's own new connection gets through a flood of them.
func TestRuntimeAPIStrangersAreBounded(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	apiFile := r.deployPuppet(spec(t, "crowd", 1, nil))
	replies := invokeAsync(t, r, "crowd", []byte("x"))
	base := workerBase(t, apiFile)
	strangers := make([]*rawRuntime, lambdas.RTMaxAllStrangers+1)
	for i := range strangers {
		strangers[i] = dialRuntime(t, base)
	}
	// well before the stranger timeout (10 s) would close it
	_ = strangers[0].c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if !strangers[0].closed() {
		t.Fatal("the oldest stranger was not closed when one more than the bound connected")
	}
	for _, rr := range []*rawRuntime{strangers[1], strangers[len(strangers)-1]} {
		rr.send("GET /nowhere HTTP/1.1\r\n\r\n")
		if resp, _, ok := rr.answer(); !ok || resp.StatusCode != 404 {
			t.Fatalf("a stranger within the bound: %v", resp)
		}
	}
	// all but the newest lambdas.RTMaxStrangers, once older than the grace
	last := strangers[len(strangers)-1-lambdas.RTMaxStrangers]
	testutil.WaitFor(t, 5*time.Second, "strangers older than the grace to be closed when one more connects", func() bool {
		dialRuntime(t, base)
		_ = last.c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		_, err := last.r.ReadByte()
		return err == io.EOF
	})
	for range lambdas.RTMaxAllStrangers { // a flood, then the worker
		dialRuntime(t, base)
	}
	worker := dialRuntime(t, base)
	serveEvent(t, worker, replies, "after a flood of strangers")
}

// serveEvent plays the worker on rr: it takes the event "x" with GET
// …/next and answers "X", which the caller gets on replies.
func serveEvent(t *testing.T, rr *rawRuntime, replies chan *nats.Msg, when string) {
	t.Helper()
	rr.send("GET " + rr.path + "invocation/next HTTP/1.1\r\n\r\n")
	resp, body, ok := rr.answer()
	if !ok || resp.StatusCode != 200 || body != "x" {
		t.Fatalf("the worker's GET next %s: %v %q", when, resp, body)
	}
	rr.send("POST " + rr.path + "invocation/" + resp.Header.Get(lambdas.HeaderRequestID) + "/response HTTP/1.1\r\nContent-Length: 1\r\n\r\nX")
	if resp, _, ok := rr.answer(); !ok || resp.StatusCode != 202 {
		t.Fatalf("the worker's response %s: %v", when, resp)
	}
	if got := reply(t, replies); string(got.Data) != "X" {
		t.Fatalf("the caller got %q", got.Data)
	}
}

// nameWorker names rr's worker with a request for an unknown request id
// (400, named all the same) and returns the answer.
func nameWorker(rr *rawRuntime) *http.Response {
	rr.send("POST " + rr.path + "invocation/other/response HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
	resp, _, _ := rr.answer()
	return resp
}

// closedSoon waits until the server has closed rr.
func closedSoon(t *testing.T, rr *rawRuntime, what string) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, what, func() bool {
		_ = rr.c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		_, err := rr.r.ReadByte()
		return err == io.EOF
	})
}

// One worker's connections are bounded too: past lambdas.RTMaxWorkerConns
// a request gets 429 and its connection ends; a connection that closes
// frees its place.
func TestRuntimeAPIWorkerConnectionsAreBounded(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	apiFile := r.deployPuppet(spec(t, "hoard", 1, nil))
	invokeAsync(t, r, "hoard", []byte("x"))
	base := workerBase(t, apiFile)
	var conns []*rawRuntime
	for i := range lambdas.RTMaxWorkerConns {
		rr := dialRuntime(t, base)
		if resp := nameWorker(rr); resp == nil || resp.StatusCode != 400 {
			t.Fatalf("connection %d of the worker: %v", i+1, resp)
		}
		conns = append(conns, rr)
	}
	extra := dialRuntime(t, base)
	if resp := nameWorker(extra); resp == nil || resp.StatusCode != 429 || !resp.Close {
		t.Fatalf("one connection too many: %v", resp)
	}
	if !extra.closed() {
		t.Fatal("the connection over the bound stayed open")
	}
	if resp := nameWorker(conns[0]); resp == nil || resp.StatusCode != 400 {
		t.Fatalf("a connection within the bound after the refusal: %v", resp)
	}
	conns[0].c.Close()
	testutil.WaitFor(t, 5*time.Second, "a closed connection to free its place", func() bool {
		resp := nameWorker(dialRuntime(t, base))
		return resp != nil && resp.StatusCode == 400
	})
}

// A worker's connection that has not sent its first request yet (its
// runtime was descheduled between connect and write, or the server has
// not read it yet) is not closed by a flood of strangers that came after
// it: a stranger is closed to make room only once it has been open for
// lambdas.RTStrangerGrace, or when lambdas.RTMaxAllStrangers are open.
func TestRuntimeAPIFloodCannotEvictAFreshWorker(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	apiFile := r.deployPuppet(spec(t, "fresh", 1, nil))
	replies := invokeAsync(t, r, "fresh", []byte("x"))
	base := workerBase(t, apiFile)
	for range lambdas.RTMaxStrangers {
		dialRuntime(t, base)
	}
	worker := dialRuntime(t, base) // connected; its request comes later
	for range 2 * lambdas.RTMaxStrangers {
		dialRuntime(t, base)
	}
	serveEvent(t, worker, replies, "after strangers flooded in behind its connection")
}

// The connections that named a worker are closed when the worker is gone:
// they are not strangers (the bound on those does not apply) and would
// otherwise stay for the idle timeout, renewed by each request — a
// worker's escaped child could keep 4 per worker that ever ran.
func TestRuntimeAPIGoneWorkersConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	apiFile := r.deployPuppet(spec(t, "gone", 1, nil))
	invokeAsync(t, r, "gone", []byte("x"))
	base := workerBase(t, apiFile)
	var conns []*rawRuntime
	for range lambdas.RTMaxWorkerConns {
		rr := dialRuntime(t, base)
		if resp := nameWorker(rr); resp == nil || resp.StatusCode != 400 {
			t.Fatalf("naming the worker: %v", resp)
		}
		conns = append(conns, rr)
	}
	r.m.Undeploy("gone")
	for i, rr := range conns {
		closedSoon(t, rr, fmt.Sprintf("connection %d of a gone worker to be closed", i+1))
	}
}
