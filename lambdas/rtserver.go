package lambdas

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/internal/loglimit"
)

// The Runtime API's HTTP/1.1 server. A worker's runtime keeps one
// connection and sends one request at a time on it (GET …/next, then POST
// …/response, …), so this is a plain loop per connection instead of
// net/http: no per-request goroutine, context, header map, routing table
// or response buffering, and every response (event included) leaves in one
// write. It reads what the AWS runtimes send — Content-Length or chunked
// bodies (with trailers), Expect: 100-continue, keep-alive or close,
// HTTP/1.0 — and answers anything else with 400 and a closed connection.

// Limits of the server.
const (
	// rtIdleTimeout bounds the wait for a request (and the reading of it)
	// on a connection that made a worker's request: a worker's GET /next
	// that waits for an event is not idle.
	rtIdleTimeout = 2 * time.Minute
	// rtStrangerTimeout is rtIdleTimeout for a connection that has not
	// (another local user's: the port is on loopback, and a slow request
	// must not hold a connection for long).
	rtStrangerTimeout = 10 * time.Second
	// rtMaxHeaderBytes bounds a request's line and headers together.
	rtMaxHeaderBytes = 64 << 10
	// rtReadBuffer is a connection's read buffer: the longest line taken.
	rtReadBuffer = 4 << 10
	// rtKeepBuffer: a connection's write or body buffer grown above this
	// (a large event or response) is dropped after the request.
	rtKeepBuffer = 64 << 10
	// rtMaxStrangers bounds the connections open at once that have not
	// named a worker: any local user can connect, and each costs a
	// goroutine, buffers and a file descriptor. One more closes the
	// oldest of them, so that a flood of connections cannot keep a new
	// worker's out (a worker names itself at once) — once the oldest has
	// been open rtStrangerGrace: a younger one may be a worker's whose
	// first request is on its way (its runtime descheduled between
	// connect and write, or its bytes not read yet while the flood is
	// accepted), and closing it would kill the worker.
	rtMaxStrangers = 128
	// rtStrangerGrace is how long a stranger is safe from being closed
	// to make room, until rtMaxAllStrangers are open.
	rtStrangerGrace = time.Second
	// rtMaxAllStrangers bounds the strangers whatever their age: one more
	// closes the oldest.
	rtMaxAllStrangers = 1024
	// rtMaxWorkerConns bounds the connections that name one worker (the
	// AWS runtimes keep one alive); a request on one more gets 429 and
	// the connection ends.
	rtMaxWorkerConns = 4
)

// rtRoute is what a request's path and method ask for.
type rtRoute int

const (
	routeNone rtRoute = iota
	routeNext
	routeResponse
	routeError
	routeInitError
)

// rtRequest is one request's head, as far as the Runtime API needs it.
type rtRequest struct {
	route   rtRoute
	head    bool // HEAD: no body in the answer
	secret  []byte
	id      []byte
	method  []byte // for messages
	path    []byte // escaped, without the query
	length  int64  // Content-Length; -1 when not given
	chunked bool
	expect  bool // Expect: 100-continue
	close   bool // the connection ends after the answer
	errType string
	// trailerType and trailerBody are the chunked body's trailers
	// Lambda-Runtime-Function-Error-Type / -Body.
	trailerType, trailerBody string
}

// errBadRequest is a request that does not parse; its text is the answer's.
type errBadRequest string

func (e errBadRequest) Error() string { return string(e) }

// rtServer accepts the Runtime API's connections.
type rtServer struct {
	a      *runtimeAPI
	ln     net.Listener
	mu     sync.Mutex
	conns  map[*rtConn]struct{}
	closed bool
	wg     sync.WaitGroup
	// strangers are the open connections that have not named a worker,
	// oldest first (guarded by mu); evicted counts those closed to make
	// room.
	strangers list.List
	evicted   atomic.Int64
	evictedAt loglimit.Every
}

func (s *rtServer) serve() {
	delay := 5 * time.Millisecond
	for {
		c, err := s.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of file descriptors, …: back off, as net/http does
			s.a.m.logger.Debug("Runtime API cannot accept a connection", "err", err)
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		rc := newRTConn(s, c)
		if !s.track(rc) {
			c.Close()
			continue
		}
		go func() {
			defer s.wg.Done()
			rc.serve()
			s.forget(rc)
		}()
	}
}

// track adds an accepted connection, a stranger until it names a worker,
// closing the oldest strangers as closeOldestStranger says. It reports
// false when the server is closed.
func (s *rtServer) track(rc *rtConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	for f := s.strangers.Front(); f != nil && closeOldestStranger(s.strangers.Len(), rc.since.Sub(f.Value.(*rtConn).since)); f = s.strangers.Front() {
		old := s.strangers.Remove(f).(*rtConn)
		old.stranger = nil
		old.nc.Close()
		s.evictedStranger(s.strangers.Len() + 1)
	}
	rc.stranger = s.strangers.PushBack(rc)
	s.conns[rc] = struct{}{}
	s.wg.Add(1)
	return true
}

// closeOldestStranger reports whether the oldest of open strangers, open
// for oldest, is closed to make room for one more.
func closeOldestStranger(open int, oldest time.Duration) bool {
	return open >= rtMaxAllStrangers || open >= rtMaxStrangers && oldest >= rtStrangerGrace
}

// forget removes a connection whose loop ended.
func (s *rtServer) forget(rc *rtConn) {
	s.mu.Lock()
	delete(s.conns, rc)
	if rc.stranger != nil {
		s.strangers.Remove(rc.stranger)
		rc.stranger = nil
	}
	s.mu.Unlock()
	if rc.wk != nil {
		rc.wk.rtConns.Add(-1)
	}
}

// evictedStranger logs a stranger closed to make room: the first, then at
// most one line a minute with the count.
func (s *rtServer) evictedStranger(open int) {
	n := s.evicted.Add(1)
	if s.evictedAt.Allow(time.Now(), time.Minute) {
		s.a.m.logger.Warn("Runtime API: too many connections that name no worker; closing the oldest (another local process?)",
			"open", open, "closed_total", n)
	}
}

// named records that c's request named worker wk, the first time: c is no
// longer a stranger, and counts as one of wk's connections. It reports
// false when wk has rtMaxWorkerConns already.
func (s *rtServer) named(c *rtConn, wk *worker) bool {
	if wk.rtConns.Add(1) > rtMaxWorkerConns {
		wk.rtConns.Add(-1)
		return false
	}
	s.mu.Lock()
	if wk.rtDropped { // gone meanwhile: c stays a stranger
		s.mu.Unlock()
		wk.rtConns.Add(-1)
		return true
	}
	c.wk = wk
	if c.stranger != nil {
		s.strangers.Remove(c.stranger)
		c.stranger = nil
	}
	s.mu.Unlock()
	return true
}

// dropWorker closes the connections that named wk, which is gone, and
// keeps any other from naming it: they would otherwise stay open for the
// idle timeout, renewed by each request, outside every bound.
func (s *rtServer) dropWorker(wk *worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wk.rtDropped = true
	if wk.rtConns.Load() == 0 {
		return
	}
	for c := range s.conns {
		if c.wk == wk {
			c.nc.Close()
		}
	}
}

// close stops accepting, closes every connection (a GET /next waiting is
// let go) and waits for their loops, at most until ctx ends.
func (s *rtServer) close(ctx context.Context) error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rtConn is one connection's state; its loop (serve) reads and answers the
// requests in order. A GET /next that has to wait is handed to the
// connection's waiter goroutine, so that the loop can see the worker hang
// up meanwhile (its wait is then cancelled).
type rtConn struct {
	a      *runtimeAPI
	nc     net.Conn
	br     *bufio.Reader
	out    []byte // the answer being written
	path   []byte // the request's path, copied out of br
	body   []byte // the request's body
	ctx    context.Context
	cancel context.CancelFunc
	// deadline and wdeadline are the read and write deadlines set last.
	deadline, wdeadline time.Time
	// srv is the server that accepted the connection; wk is the worker
	// its first request named (then rtIdleTimeout applies, else
	// rtStrangerTimeout), counted in wk.rtConns; until then stranger is
	// its place in srv.strangers (guarded by srv.mu); since is when it was accepted.
	srv      *rtServer
	wk       *worker
	stranger *list.Element
	since    time.Time

	// The waiter: pending says a GET /next is with it; waitCh hands it the
	// worker, waitDone says it answered (false: the write failed).
	pending  bool
	waitCh   chan rtWait
	waitDone chan bool
}

func newRTConn(s *rtServer, c net.Conn) *rtConn {
	ctx, cancel := context.WithCancel(context.Background())
	return &rtConn{a: s.a, srv: s, nc: c, br: bufio.NewReaderSize(c, rtReadBuffer), ctx: ctx, cancel: cancel, since: time.Now()}
}

func (c *rtConn) serve() {
	defer func() {
		c.cancel()
		if c.pending {
			<-c.waitDone
		}
		if c.waitCh != nil {
			close(c.waitCh)
		}
		c.closeGracefully()
	}()
	var req rtRequest
	for {
		if !c.awaitRequest() {
			return
		}
		req = rtRequest{length: -1}
		if err := c.readHead(&req); err != nil {
			var bad errBadRequest
			if errors.As(err, &bad) {
				c.answerError(true, false, 400, "InvalidRequest", string(bad))
			}
			return
		}
		if !c.dispatch(&req) {
			return
		}
		if req.close {
			if c.pending {
				c.awaitRequest() // its GET /next is answered first
			}
			return
		}
		if !c.pending {
			c.trim()
		}
	}
}

// closeGracefully ends the connection so that the runtime reads the last
// answer: the write side first, then what it still sends is read and
// dropped for a moment (closing with unread input would reset the
// connection, and the answer could be lost), as net/http does.
func (c *rtConn) closeGracefully() {
	if tc, ok := c.nc.(*net.TCPConn); ok && tc.CloseWrite() == nil {
		_ = tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.br, 256<<10))
	}
	c.nc.Close()
}

// awaitRequest waits for the next request's first byte. While the waiter
// holds a GET /next, a hang-up cancels its wait, and the request that
// follows its answer is read once the answer is out; the idle timeout
// counts from the answer. It reports false when the connection is to end.
func (c *rtConn) awaitRequest() bool {
	for {
		idle := c.idle()
		if now := time.Now(); c.deadline.Sub(now) < idle-time.Second {
			// Refreshed at most once a second: a busy worker's requests
			// cost no deadline change each.
			c.deadline = now.Add(idle)
			_ = c.nc.SetReadDeadline(c.deadline)
		}
		wasPending := c.pending
		_, err := c.br.Peek(1)
		timeout := isTimeout(err)
		switch {
		case c.pending && !timeout:
			if err != nil {
				c.cancel() // hung up: the GET /next gives its event back
			}
			ok := <-c.waitDone
			c.pending = false
			if !ok {
				return false
			}
		case c.pending:
			c.pollWaiter()
		}
		if err == nil {
			return true
		}
		if !timeout || !wasPending {
			return false
		}
		// A long wait for an event is no idle connection.
	}
}

// pollWaiter notes, without waiting, that the waiter answered.
func (c *rtConn) pollWaiter() {
	select {
	case ok := <-c.waitDone:
		c.pending = false
		if !ok {
			c.nc.Close()
		}
	default:
	}
}

// idle is the connection's idle timeout: rtIdleTimeout once a request named
// a worker, else rtStrangerTimeout.
func (c *rtConn) idle() time.Duration {
	if c.wk != nil {
		return rtIdleTimeout
	}
	return rtStrangerTimeout
}

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// trim drops buffers grown by a large request or answer.
func (c *rtConn) trim() {
	if cap(c.out) > rtKeepBuffer {
		c.out = nil
	}
	if cap(c.body) > rtKeepBuffer {
		c.body = nil
	}
}

// line reads one line of the head (CRLF or LF), counting it against the
// head's limit; the slice is valid until the next read.
func (c *rtConn) line(budget *int) ([]byte, error) {
	l, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errBadRequest("a request line or header is longer than 4 KiB")
	}
	if err != nil {
		return nil, err
	}
	if *budget -= len(l); *budget < 0 {
		return nil, errBadRequest("the request's headers are over 64 KiB")
	}
	l = l[:len(l)-1]
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l, nil
}

// readHead reads the request line and the headers into req.
func (c *rtConn) readHead(req *rtRequest) error {
	budget := rtMaxHeaderBytes
	l, err := c.line(&budget)
	if err != nil {
		return err
	}
	method, rest, ok1 := bytes.Cut(l, []byte{' '})
	target, proto, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 {
		return errBadRequest("malformed request line")
	}
	switch string(proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		req.close = true // unless it asks for keep-alive
	default:
		return errBadRequest("unsupported protocol " + strconv.Quote(string(proto)) + "; the Runtime API speaks HTTP/1.1")
	}
	c.path = append(c.path[:0], method...)
	req.method = c.path[:len(method)]
	c.path = append(c.path, target...)
	req.path = c.path[len(method):]
	if err := c.parseTarget(req); err != nil {
		return err
	}
	for {
		l, err := c.line(&budget)
		if err != nil {
			return err
		}
		if len(l) == 0 {
			break
		}
		if err := req.header(l); err != nil {
			return err
		}
	}
	if req.chunked && req.length >= 0 {
		return errBadRequest("both Content-Length and Transfer-Encoding")
	}
	return nil
}

// header takes one header line.
func (req *rtRequest) header(l []byte) error {
	name, value, ok := cutHeader(l)
	if !ok {
		return errBadRequest("malformed header line")
	}
	switch {
	case equalFold(name, "Content-Length"):
		n, ok := parseDecimal(value)
		if !ok || req.length >= 0 && req.length != n {
			return errBadRequest("invalid Content-Length")
		}
		req.length = n
	case equalFold(name, "Transfer-Encoding"):
		if !equalFold(value, "chunked") {
			return errBadRequest("unsupported Transfer-Encoding " + strconv.Quote(string(value)))
		}
		req.chunked = true
	case equalFold(name, "Connection"):
		for opt := range bytes.SplitSeq(value, []byte{','}) {
			switch opt = bytes.TrimSpace(opt); {
			case equalFold(opt, "close"):
				req.close = true
			case equalFold(opt, "keep-alive"):
				req.close = false
			}
		}
	case equalFold(name, "Expect"):
		if !equalFold(value, "100-continue") {
			return errBadRequest("unsupported Expect " + strconv.Quote(string(value)))
		}
		req.expect = true
	case equalFold(name, HeaderFunctionErrType):
		req.errType = string(value)
	}
	return nil
}

// cutHeader splits "Name: value" (the value trimmed); a name must be a
// token: no spaces, no leading whitespace (obsolete line folding).
func cutHeader(l []byte) (name, value []byte, ok bool) {
	name, value, ok = bytes.Cut(l, []byte{':'})
	if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
		return nil, nil, false
	}
	return name, bytes.TrimSpace(value), true
}

// equalFold compares b with the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseTarget finds the route of req's path: /w/SECRET/2018-06-01/runtime/
// then invocation/next (GET), invocation/ID/response or /error, or
// init/error (POST). A path with ".", ".." or empty segments takes no route.
func (c *rtConn) parseTarget(req *rtRequest) error {
	p := req.path
	if bytes.HasPrefix(p, []byte("http://")) { // absolute form
		i := bytes.IndexByte(p[len("http://"):], '/')
		if i < 0 {
			p = []byte("/")
		} else {
			p = p[len("http://")+i:]
		}
	}
	if i := bytes.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if len(p) == 0 || p[0] != '/' {
		return errBadRequest("the request target is not a path")
	}
	req.path = p
	req.head = string(req.method) == "HEAD"
	var seg [9][]byte
	n := 0
	for rest := p[1:]; ; n++ {
		s, more, found := bytes.Cut(rest, []byte{'/'})
		if n == len(seg) || len(s) == 0 || string(s) == "." || string(s) == ".." {
			return nil // no route
		}
		seg[n] = s
		if !found {
			n++
			break
		}
		rest = more
	}
	if n < 6 || string(seg[0]) != "w" || string(seg[2]) != "2018-06-01" || string(seg[3]) != "runtime" {
		return nil
	}
	get, post := string(req.method) == "GET", string(req.method) == "POST"
	switch {
	case n == 6 && post && string(seg[4]) == "init" && string(seg[5]) == "error":
		req.route = routeInitError
	case n == 6 && get && string(seg[4]) == "invocation" && string(seg[5]) == "next":
		req.route = routeNext
	case n == 7 && post && string(seg[4]) == "invocation" && string(seg[6]) == "response":
		req.route = routeResponse
	case n == 7 && post && string(seg[4]) == "invocation" && string(seg[6]) == "error":
		req.route = routeError
	default:
		return nil
	}
	var err error
	if req.secret, err = unescapeSegment(seg[1]); err == nil && n == 7 {
		req.id, err = unescapeSegment(seg[5])
	}
	return err
}

// unescapeSegment decodes a path segment's %XX escapes (in place is not
// possible: it returns a copy when there is any).
func unescapeSegment(s []byte) ([]byte, error) {
	if bytes.IndexByte(s, '%') < 0 {
		return s, nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			out = append(out, s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return nil, errBadRequest("invalid escape in the path")
		}
		out = append(out, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
		i += 2
	}
	return out, nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// readBody reads req's body, at most limit bytes: tooLarge when there is
// more (then what is beyond the limit, or the whole body when its length
// says so at once, is not read, and the connection ends after the
// answer). The body is valid until the next request.
func (c *rtConn) readBody(req *rtRequest, limit int) (body []byte, tooLarge bool, err error) {
	if req.expect && (req.length > 0 || req.chunked) {
		c.writeDeadline()
		if _, err := c.nc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
			return nil, false, err
		}
	}
	if req.chunked {
		return c.readChunked(req, limit)
	}
	if req.length > int64(limit) {
		req.close = true
		return c.body[:0], true, nil
	}
	if c.body, err = c.appendRead(c.body[:0], int(max(req.length, 0))); err != nil {
		return nil, false, eofIsBad(err)
	}
	return c.body, false, nil
}

// appendRead appends the next n bytes read to b. The buffer grows with
// the bytes that came (at most doubling), not with n at once: a request
// claiming 6 MiB and sending nothing costs no 6 MiB.
func (c *rtConn) appendRead(b []byte, n int) ([]byte, error) {
	for n > 0 {
		start := len(b)
		step := min(n, max(rtKeepBuffer, start))
		b = growKeep(b, start+step)
		if _, err := io.ReadFull(c.br, b[start:]); err != nil {
			return b[:start], err
		}
		n -= step
	}
	return b, nil
}
