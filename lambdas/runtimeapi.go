package lambdas

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// Runtime API header names. The Dart runtime of the seeds reads the deadline
// and the ARN under misspelled names, so both spellings are sent.
const (
	HeaderRequestID        = "Lambda-Runtime-Aws-Request-Id"
	HeaderDeadlineMs       = "Lambda-Runtime-Deadline-Ms"
	HeaderFunctionARN      = "Lambda-Runtime-Invoked-Function-Arn"
	HeaderTraceID          = "Lambda-Runtime-Trace-Id"
	HeaderDeadlineMsDart   = "Lambda-Runtime-Aws-Deadline-Ms"
	HeaderFunctionARNDart  = "Lambda-Runtime-Invoked-Functions-Arn"
	HeaderFunctionErrType  = "Lambda-Runtime-Function-Error-Type"
	HeaderClientContext    = clientsdk.HeaderClientContext
	HeaderCognitoIdentity  = clientsdk.HeaderCognitoIdentity
	trailerFunctionErrBody = "Lambda-Runtime-Function-Error-Body"
)

// runtimeAPI is the AWS Lambda Runtime API server of a Manager: one loopback
// listener, workers told apart by the "/w/SECRET" prefix of their
// AWS_LAMBDA_RUNTIME_API: 128 random bits per worker, known only to it.
// Its HTTP/1.1 server is rtserver.go's.
type runtimeAPI struct {
	m   *Manager
	ln  net.Listener
	srv *rtServer
}

func startRuntimeAPI(m *Manager, addr string) (*runtimeAPI, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lambdas: Runtime API cannot listen on %s: %w", addr, err)
	}
	a := &runtimeAPI{m: m, ln: ln}
	a.srv = &rtServer{a: a, ln: ln, conns: map[*rtConn]struct{}{}}
	go a.srv.serve()
	return a, nil
}

func (a *runtimeAPI) addr() string { return a.ln.Addr().String() }

func (a *runtimeAPI) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return a.srv.close(ctx)
}

// workerOf returns the Runtime API worker whose secret is secret, or nil
// (a native worker's secret is its control inbox's, not a Runtime API path).
func (a *runtimeAPI) workerOf(secret []byte) *worker {
	a.m.wmu.Lock()
	wk := a.m.workers[string(secret)]
	a.m.wmu.Unlock()
	if wk != nil && wk.native != nil {
		return nil
	}
	return wk
}

// dispatch answers one request whose head is read. It reports false when
// the connection must end.
func (c *rtConn) dispatch(req *rtRequest) bool {
	if req.route == routeNone {
		return c.refuse(req, http.StatusNotFound, "NotFound", "no Runtime API route "+string(req.method)+" "+string(req.path))
	}
	wk := c.a.workerOf(req.secret)
	if wk == nil {
		return c.refuse(req, http.StatusNotFound, "UnknownWorker", "no dartup worker has this Runtime API path (stopped?)")
	}
	if c.wk == nil && !c.srv.named(c, wk) {
		req.close = true
		return c.refuse(req, http.StatusTooManyRequests, "TooManyConnections",
			fmt.Sprintf("this worker has %d Runtime API connections open already; reuse one (keep-alive)", rtMaxWorkerConns))
	}
	switch req.route {
	case routeNext:
		return c.next(req, wk)
	case routeResponse:
		return c.response(req, wk)
	case routeError:
		return c.invocationError(req, wk)
	}
	return c.initError(req, wk)
}

// refuse answers a request without reading its body: the connection ends
// after the answer when there is one.
func (c *rtConn) refuse(req *rtRequest, code int, typ, msg string) bool {
	if req.length > 0 || req.chunked {
		req.close = true
	}
	return c.answerError(req.close, req.head, code, typ, msg)
}

// rtWait is a GET /next handed to the connection's waiter.
type rtWait struct {
	wk       *worker
	stopping bool // hold the answer (410) until the worker is gone
	close    bool
}

// next is GET /runtime/invocation/next: the event at once when one waits,
// else the waiter answers it when one comes.
func (c *rtConn) next(req *rtRequest, wk *worker) bool {
	if req.length > 0 || req.chunked {
		req.close = true // a GET with a body: not read, not kept
	}
	inv, err := wk.f.takeNext(wk)
	if inv != nil {
		return c.answerEvent(req.close, wk, inv)
	}
	if c.waitCh == nil {
		c.waitCh, c.waitDone = make(chan rtWait, 1), make(chan bool, 1)
		go c.waiter()
	}
	c.pending = true
	c.waitCh <- rtWait{wk: wk, stopping: err != nil, close: req.close}
	return true
}

// waiter answers the GET /next requests handed to it, one at a time.
func (c *rtConn) waiter() {
	for j := range c.waitCh {
		c.waitDone <- c.awaitEvent(j)
	}
}

// awaitEvent waits for j's event and answers it; a worker being stopped
// is held until its process is gone, so that the runtime does not see an
// answer it could act on, then told 410 (on a connection that named
// another worker: those that named it are closed as it goes, see
// rtServer.dropWorker). It reports false when the answer could not be
// written.
func (c *rtConn) awaitEvent(j rtWait) bool {
	if !j.stopping {
		inv, err := j.wk.f.await(c.ctx, j.wk)
		if inv != nil {
			return c.answerEvent(j.close, j.wk, inv)
		}
		if !errors.Is(err, errStopping) {
			return true // hung up
		}
	}
	select {
	case <-j.wk.goneCh:
	case <-c.ctx.Done():
	}
	return c.answerError(j.close, false, http.StatusGone, "WorkerStopped", "this worker is being stopped")
}

// answerEvent writes inv's event with its headers, in one write.
func (c *rtConn) answerEvent(closeConn bool, wk *worker, inv *invocation) bool {
	var dl [20]byte
	deadline := strconv.AppendInt(dl[:0], inv.deadline.UnixMilli(), 10)
	c.begin(http.StatusOK)
	c.out = appendHeader(c.out, "Content-Type", "application/json")
	c.out = appendHeader(c.out, HeaderRequestID, inv.id)
	c.out = appendHeaderBytes(c.out, HeaderDeadlineMs, deadline)
	c.out = appendHeaderBytes(c.out, HeaderDeadlineMsDart, deadline)
	c.out = appendHeader(c.out, HeaderFunctionARN, wk.f.arn)
	c.out = appendHeader(c.out, HeaderFunctionARNDart, wk.f.arn)
	c.out = append(c.out, HeaderTraceID+": "...)
	c.out = inv.tr.tc.AppendXRay(c.out)
	c.out = append(c.out, "\r\n"...)
	inv.tr.coldStart(wk.servedNone)
	if inv.msg != nil && inv.msg.Header != nil {
		// Passed through from the NATS request's headers when set.
		for _, k := range passedHeaders {
			if v := inv.msg.Header.Get(k); v != "" {
				c.out = appendHeader(c.out, k, v)
			}
		}
	}
	return c.end(closeConn, false, inv.event)
}

// response is POST /runtime/invocation/ID/response.
func (c *rtConn) response(req *rtRequest, wk *worker) bool {
	body, tooLarge, err := c.readBody(req, MaxResponseBytes)
	if err != nil {
		return c.badBody(req, err)
	}
	id := string(req.id)
	inv, code := wk.f.finish(wk, id)
	if code != 0 {
		return c.stateError(req, code, id)
	}
	if tooLarge {
		msg := fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponseBytes)
		ok := c.answerError(req.close, req.head, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", msg)
		inv.fail(clientsdk.Errorf(413, TypeTooLarge, "%s", msg))
		return ok
	}
	if req.trailerType != "" {
		// The runtime failed while streaming the response (aws-lambda-go
		// reports this in trailers).
		e := &clientsdk.Error{Code: 500, Type: req.trailerType, Message: "the function failed while sending its response"}
		if raw, err := base64.StdEncoding.DecodeString(req.trailerBody); err == nil {
			decodeFunctionError(raw, e)
		}
		ok := c.accepted(req)
		inv.fail(e)
		return ok
	}
	inv.succeed(body) // sent (copied) before the body's buffer is reused
	return c.accepted(req)
}

// badBody answers a body that could not be read: 400 when it does not
// parse; a broken connection just ends.
func (c *rtConn) badBody(req *rtRequest, err error) bool {
	var bad errBadRequest
	if errors.As(err, &bad) {
		c.answerError(true, req.head, http.StatusBadRequest, "InvalidRequest", string(bad))
	}
	return false
}

func (c *rtConn) stateError(req *rtRequest, code int, id string) bool {
	if code == http.StatusForbidden {
		return c.answerError(req.close, req.head, code, "InvalidStateTransition", "request "+id+" was already answered")
	}
	return c.answerError(req.close, req.head, http.StatusBadRequest, "InvalidRequestID", "request "+id+" is not this worker's current invocation")
}

// decodeFunctionError fills e from an AWS error body
// {"errorMessage","errorType","stackTrace"}; a body that is not such JSON
// becomes the message.
func decodeFunctionError(raw []byte, e *clientsdk.Error) {
	var body struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}
	if json.Unmarshal(raw, &body) == nil && (body.Message != "" || body.Type != "") {
		if body.Message != "" {
			e.Message = body.Message
		}
		if e.Type == "" || e.Type == TypeUnhandled {
			if body.Type != "" {
				e.Type = body.Type
			}
		}
		return
	}
	if s := bytes.TrimSpace(raw); len(s) > 0 {
		e.Message = string(s)
	}
}

// functionError is the error a runtime posted: its body, as
// decodeFunctionError reads it, and its error type header.
func functionError(body []byte, typ, defType, defMsg string) *clientsdk.Error {
	e := &clientsdk.Error{Code: 500, Type: typ, Message: defMsg}
	decodeFunctionError(body, e)
	if e.Type == "" {
		e.Type = defType
	}
	return e
}

// invocationError is POST /runtime/invocation/ID/error. A body over the
// limit is cut (the caller's message is cut further anyway).
func (c *rtConn) invocationError(req *rtRequest, wk *worker) bool {
	body, _, err := c.readBody(req, MaxResponseBytes)
	if err != nil {
		return c.badBody(req, err)
	}
	e := functionError(body, req.errType, TypeUnhandled, "the function returned an error")
	id := string(req.id)
	inv, code := wk.f.finish(wk, id)
	if code != 0 {
		return c.stateError(req, code, id)
	}
	ok := c.accepted(req)
	inv.fail(e)
	return ok
}

// initError is POST /runtime/init/error.
func (c *rtConn) initError(req *rtRequest, wk *worker) bool {
	body, _, err := c.readBody(req, MaxResponseBytes)
	if err != nil {
		return c.badBody(req, err)
	}
	e := functionError(body, req.errType, "Runtime.InitError", "the function failed to initialize")
	wk.f.mu.Lock()
	ready := wk.ready
	wk.f.mu.Unlock()
	if ready {
		return c.answerError(req.close, req.head, http.StatusForbidden, "InvalidStateTransition", "init/error after the first GET /next")
	}
	ok := c.accepted(req)
	wk.f.initError(wk, e)
	return ok
}
