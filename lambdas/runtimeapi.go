package lambdas

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strconv"
	"sync"
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

// singleWriteLimit is the largest event the normal response path writes in
// one syscall together with the headers (the connection's 4 KiB buffer).
// Larger events go through a hijacked connection so that headers and body
// still leave in one write: the Dart runtime decodes only the first chunk.
const singleWriteLimit = 3 << 10

// runtimeAPI is the AWS Lambda Runtime API server of a Manager: one loopback
// listener, workers told apart by the "/w/SECRET" prefix of their
// AWS_LAMBDA_RUNTIME_API: 128 random bits per worker, known only to it.
type runtimeAPI struct {
	m   *Manager
	ln  net.Listener
	re  *connQueue
	srv *http.Server
}

func startRuntimeAPI(m *Manager, addr string) (*runtimeAPI, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lambdas: Runtime API cannot listen on %s: %w", addr, err)
	}
	a := &runtimeAPI{m: m, ln: ln, re: newConnQueue(ln.Addr())}
	mux := http.NewServeMux()
	const base = "/w/{secret}/2018-06-01/runtime"
	mux.HandleFunc("GET "+base+"/invocation/next", a.next)
	mux.HandleFunc("POST "+base+"/invocation/{id}/response", a.response)
	mux.HandleFunc("POST "+base+"/invocation/{id}/error", a.invocationError)
	mux.HandleFunc("POST "+base+"/init/error", a.initError)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "NotFound", "no Runtime API route "+r.Method+" "+r.URL.Path)
	})
	a.srv = &http.Server{
		Handler:           cleanPathsOnly(mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute, // a worker's GET /next is a request, not an idle connection
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelDebug),
	}
	go func() { _ = a.srv.Serve(ln) }()
	go func() { _ = a.srv.Serve(a.re) }()
	return a, nil
}

// cleanPathsOnly answers 404 to a path with "." or ".." segments or empty
// ones, which ServeMux would redirect (307) to another route, perhaps of
// another worker: the Runtime API answers only the statuses it documents.
func cleanPathsOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if c := path.Clean("/" + p); c != p && c+"/" != p {
			apiError(w, http.StatusNotFound, "NotFound", "no Runtime API route "+r.Method+" "+p+" (not a clean path)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a *runtimeAPI) addr() string { return a.ln.Addr().String() }

func (a *runtimeAPI) close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	if err != nil {
		_ = a.srv.Close()
	}
	_ = a.re.Close()
	return err
}

// apiError answers the runtime with an AWS-style error body.
func apiError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"errorMessage": msg, "errorType": typ})
	_, _ = w.Write(b)
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"OK"}`))
}

func (a *runtimeAPI) worker(w http.ResponseWriter, r *http.Request) *worker {
	wk := a.m.worker(r.PathValue("secret"))
	if wk != nil && wk.native != nil {
		wk = nil // a native worker's secret is its control inbox's, not a Runtime API path
	}
	if wk == nil {
		apiError(w, http.StatusNotFound, "UnknownWorker", "no dartup worker has this Runtime API path (stopped?)")
	}
	return wk
}

func (a *runtimeAPI) arn(f *function) string {
	return "arn:aws:lambda:" + a.m.opts.region + ":000000000000:function:" + f.name
}

// next is GET /runtime/invocation/next.
func (a *runtimeAPI) next(w http.ResponseWriter, r *http.Request) {
	wk := a.worker(w, r)
	if wk == nil {
		return
	}
	inv, err := wk.f.next(r.Context(), wk)
	if err != nil {
		if errors.Is(err, errStopping) {
			// Being stopped: hold the request until the process is gone so
			// that the runtime does not see an answer it could act on.
			select {
			case <-wk.goneCh:
			case <-r.Context().Done():
			}
			apiError(w, http.StatusGone, "WorkerStopped", "this worker is being stopped")
		}
		return
	}
	deadline := strconv.FormatInt(inv.deadline.UnixMilli(), 10)
	arn := a.arn(wk.f)
	h := http.Header{}
	h[HeaderRequestID] = []string{inv.id}
	h[HeaderDeadlineMs] = []string{deadline}
	h[HeaderDeadlineMsDart] = []string{deadline}
	h[HeaderFunctionARN] = []string{arn}
	h[HeaderFunctionARNDart] = []string{arn}
	h[HeaderTraceID] = []string{inv.tr.tc.XRay()}
	inv.tr.coldStart(wk.servedNone)
	if inv.msg != nil && inv.msg.Header != nil {
		// Passed through from the NATS request's headers when set.
		for _, k := range []string{HeaderClientContext, HeaderCognitoIdentity} {
			if v := inv.msg.Header.Get(k); v != "" {
				h[k] = []string{v}
			}
		}
	}
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(inv.event))}
	if len(inv.event) <= singleWriteLimit {
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.event)
		return
	}
	a.writeHijacked(w, h, inv.event)
}

// writeHijacked writes the status line, headers and body in one write on the
// raw connection, then hands the connection back to the server.
func (a *runtimeAPI) writeHijacked(w http.ResponseWriter, h http.Header, body []byte) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return
	}
	var buf bytes.Buffer
	buf.Grow(len(body) + 512)
	buf.WriteString("HTTP/1.1 200 OK\r\n")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	_ = h.Write(&buf)
	buf.WriteString("\r\n")
	buf.Write(body)
	_ = conn.SetDeadline(time.Time{})
	if _, err := conn.Write(buf.Bytes()); err != nil {
		conn.Close()
		return
	}
	var c net.Conn = conn
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		c = &prefixConn{Conn: conn, prefix: append([]byte(nil), p...)}
	}
	a.re.push(c)
}

// readLimited reads up to limit bytes of r; tooLarge reports more.
func readLimited(r io.Reader, limit int) (b []byte, tooLarge bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if len(b) > limit {
		return nil, true, nil
	}
	return b, false, err
}

// response is POST /runtime/invocation/ID/response.
func (a *runtimeAPI) response(w http.ResponseWriter, r *http.Request) {
	wk := a.worker(w, r)
	if wk == nil {
		return
	}
	id := r.PathValue("id")
	body, tooLarge, err := readLimited(r.Body, MaxResponseBytes)
	if err != nil {
		apiError(w, http.StatusBadRequest, "InvalidRequest", "cannot read the response body: "+err.Error())
		return
	}
	inv, code := wk.f.finish(wk, id)
	if code != 0 {
		stateError(w, code, id)
		return
	}
	if tooLarge {
		msg := fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponseBytes)
		apiError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", msg)
		inv.fail(clientsdk.Errorf(413, TypeTooLarge, "%s", msg))
		return
	}
	if typ := r.Trailer.Get(HeaderFunctionErrType); typ != "" {
		// The runtime failed while streaming the response (aws-lambda-go
		// reports this in trailers).
		e := &clientsdk.Error{Code: 500, Type: typ, Message: "the function failed while sending its response"}
		if raw, err := base64.StdEncoding.DecodeString(r.Trailer.Get(trailerFunctionErrBody)); err == nil {
			decodeFunctionError(raw, e)
		}
		accepted(w)
		inv.fail(e)
		return
	}
	inv.succeed(body)
	accepted(w)
}

func stateError(w http.ResponseWriter, code int, id string) {
	if code == http.StatusForbidden {
		apiError(w, code, "InvalidStateTransition", "request "+id+" was already answered")
		return
	}
	apiError(w, http.StatusBadRequest, "InvalidRequestID", "request "+id+" is not this worker's current invocation")
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

func readFunctionError(r *http.Request, defType, defMsg string) *clientsdk.Error {
	raw, _, _ := readLimited(r.Body, MaxResponseBytes)
	e := &clientsdk.Error{Code: 500, Type: r.Header.Get(HeaderFunctionErrType), Message: defMsg}
	decodeFunctionError(raw, e)
	if e.Type == "" {
		e.Type = defType
	}
	return e
}

// invocationError is POST /runtime/invocation/ID/error.
func (a *runtimeAPI) invocationError(w http.ResponseWriter, r *http.Request) {
	wk := a.worker(w, r)
	if wk == nil {
		return
	}
	e := readFunctionError(r, TypeUnhandled, "the function returned an error")
	inv, code := wk.f.finish(wk, r.PathValue("id"))
	if code != 0 {
		stateError(w, code, r.PathValue("id"))
		return
	}
	accepted(w)
	inv.fail(e)
}

// initError is POST /runtime/init/error.
func (a *runtimeAPI) initError(w http.ResponseWriter, r *http.Request) {
	wk := a.worker(w, r)
	if wk == nil {
		return
	}
	e := readFunctionError(r, "Runtime.InitError", "the function failed to initialize")
	wk.f.mu.Lock()
	ready := wk.ready
	wk.f.mu.Unlock()
	if ready {
		apiError(w, http.StatusForbidden, "InvalidStateTransition", "init/error after the first GET /next")
		return
	}
	accepted(w)
	wk.f.initError(wk, e)
}

// connQueue is a net.Listener fed with hijacked connections, so that the
// server keeps serving them after a single-write response.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

// prefixConn replays bytes already buffered from a hijacked connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
