package lambdas

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Answers of the Runtime API's server (rtserver.go): built in the
// connection's buffer and written in one write, headers and body.

// begin starts an answer with its status line.
func (c *rtConn) begin(code int) {
	c.out = append(c.out[:0], "HTTP/1.1 "...)
	c.out = strconv.AppendInt(c.out, int64(code), 10)
	c.out = append(c.out, ' ')
	c.out = append(c.out, http.StatusText(code)...)
	c.out = append(c.out, "\r\n"...)
}

// appendHeader appends "k: v\r\n"; a value's CR and LF become spaces (a
// header passed through from a caller must not start another).
func appendHeader(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	for i := 0; i < len(v); i++ {
		if ch := v[i]; ch == '\r' || ch == '\n' {
			b = append(b, ' ')
		} else {
			b = append(b, ch)
		}
	}
	return append(b, "\r\n"...)
}

func appendHeaderBytes(b []byte, k string, v []byte) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}

// end adds Date, Content-Length (and Connection: close), the body (not
// for HEAD), and writes the answer. It reports whether the write worked.
func (c *rtConn) end(closeConn, head bool, body []byte) bool {
	c.out = append(c.out, "Date: "...)
	c.out = time.Now().UTC().AppendFormat(c.out, http.TimeFormat)
	c.out = append(c.out, "\r\nContent-Length: "...)
	c.out = strconv.AppendInt(c.out, int64(len(body)), 10)
	if closeConn {
		c.out = append(c.out, "\r\nConnection: close"...)
	}
	c.out = append(c.out, "\r\n\r\n"...)
	if !head {
		c.out = append(c.out, body...)
	}
	c.writeDeadline()
	_, err := c.nc.Write(c.out)
	return err == nil
}

// writeDeadline bounds the writes of an answer by the connection's idle
// timeout: a peer that sends requests and never reads their answers must
// not hold the connection (and its goroutine, and megabytes of socket
// buffers) past it. Refreshed at most once a second, as the read deadline.
// Only one of the loop and the waiter writes at a time.
func (c *rtConn) writeDeadline() {
	idle := c.idle()
	if now := time.Now(); c.wdeadline.Sub(now) < idle-time.Second {
		c.wdeadline = now.Add(idle)
		_ = c.nc.SetWriteDeadline(c.wdeadline)
	}
}

// accepted is the 202 of a response or an error taken.
func (c *rtConn) accepted(req *rtRequest) bool {
	c.begin(http.StatusAccepted)
	c.out = appendHeader(c.out, "Content-Type", "application/json")
	return c.end(req.close, req.head, []byte(`{"status":"OK"}`))
}

// apiErrorBody is an AWS-style error body.
type apiErrorBody struct {
	Message string `json:"errorMessage"`
	Type    string `json:"errorType"`
}

// answerError answers with an AWS-style error body.
func (c *rtConn) answerError(closeConn, head bool, code int, typ, msg string) bool {
	b, _ := json.Marshal(apiErrorBody{Message: msg, Type: typ})
	c.begin(code)
	c.out = appendHeader(c.out, "Content-Type", "application/json")
	return c.end(closeConn, head, b)
}

// readChunked reads a chunked body and its trailers, at most limit bytes:
// tooLarge when there is more (the rest is not read).
func (c *rtConn) readChunked(req *rtRequest, limit int) (body []byte, tooLarge bool, err error) {
	body = c.body[:0]
	defer func() { c.body = body }()
	lines := int(^uint(0) >> 1) // chunk-size lines: each bounded by the buffer
	for {
		l, err := c.line(&lines)
		if err != nil {
			return body, false, eofIsBad(err)
		}
		size, ok := parseHex(l)
		if !ok {
			return body, false, errBadRequest("malformed chunk size")
		}
		if size == 0 {
			break
		}
		if size > int64(limit-len(body)) {
			req.close = true
			body, err = c.appendRead(body, limit-len(body))
			return body, true, eofIsBad(err)
		}
		if body, err = c.appendRead(body, int(size)); err != nil {
			return body, false, eofIsBad(err)
		}
		if l, err := c.line(&lines); err != nil || len(l) != 0 {
			return body, false, errBadRequest("malformed chunk: no CRLF after its data")
		}
	}
	budget := rtMaxHeaderBytes
	for {
		l, err := c.line(&budget)
		if err != nil {
			return body, false, eofIsBad(err)
		}
		if len(l) == 0 {
			return body, false, nil
		}
		if err := req.trailer(l); err != nil {
			return body, false, err
		}
	}
}

// trailer takes one trailer line of a chunked body.
func (req *rtRequest) trailer(l []byte) error {
	name, value, ok := cutHeader(l)
	if !ok {
		return errBadRequest("malformed trailer line")
	}
	switch {
	case equalFold(name, HeaderFunctionErrType):
		req.trailerType = string(value)
	case equalFold(name, trailerFunctionErrBody):
		req.trailerBody = string(value)
	}
	return nil
}

// eofIsBad turns a body cut short by the connection's end into a broken
// connection (nothing to answer), and keeps other errors.
func eofIsBad(err error) error {
	if err == io.ErrUnexpectedEOF {
		return io.EOF
	}
	return err
}

// growKeep returns b extended to n bytes, keeping its content.
func growKeep(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}

// parseHex reads a chunk size (hex digits, then optional extensions).
func parseHex(l []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(l); i++ {
		d := unhex(l[i])
		if d < 0 {
			break
		}
		if n >= 1<<55 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	if i == 0 {
		return 0, false
	}
	for ; i < len(l) && (l[i] == ' ' || l[i] == '\t'); i++ {
	}
	return n, i == len(l) || l[i] == ';'
}

// parseDecimal reads a Content-Length.
func parseDecimal(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range v {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}
