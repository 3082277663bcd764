// Command dartmimic is a lambda bootstrap that speaks the AWS Lambda Runtime
// API byte for byte as the Dart package's runLambda does (docs/protocol.md,
// section 2): the same requests on one keep-alive HTTP/1.1 connection, header
// names in lower case as dart:io sends them, user-agent dartup-dart/0.1.0,
// Content-Length bodies (never chunked), the same event decoding (section 3.1)
// and result encoding (section 3.3), and the same reaction to unexpected
// statuses (exit 255, like an uncaught Dart error).
//
// It runs the handler of the package's hello example:
//
//	runLambda((req) async => Response.text('Hello, lambda world!'))
//
// except that a raw event "throw" (or an HTTP event for path /throw) throws
// StateError('boom'). With DARTMIMIC_INIT_FAIL=1 its init callback throws
// StateError('init failed'): it posts /runtime/init/error and exits 255
// (natively, with DARTMIMIC_FLOOD=N, after N unknown notices).
//
// With DARTUP_LAMBDA_SUBJECT set it speaks the native protocol instead, as
// runLambda then does (native.go, docs/protocol.md section 7), with the same
// handler; a raw event "huge" returns 6 MiB + 200 bytes (413).
//
// No Dart compiler can be installed on dartup's machines; this program is how
// the Go tests replay the Dart side's HTTP and NATS exchanges against the
// real Runtime API server and the real native protocol.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

const userAgent = "dartup-dart/0.1.0"

// The stack trace line a Dart AOT program would report for the handler.
const stackLine = "#0      main.<anonymous closure> (file:///app/bin/main.dart:4:36)"

type client struct {
	hostport string // "127.0.0.1:PORT"
	prefix   string // "/w/ID" or ""
	conn     net.Conn
	br       *bufio.Reader
}

// newClient splits AWS_LAMBDA_RUNTIME_API as runLambda does: "http://" +
// api + "/2018-06-01/…", so a path prefix after host:port is kept.
func newClient(api string) *client {
	api = strings.TrimSpace(api)
	api = strings.TrimPrefix(api, "http://")
	api = strings.TrimRight(api, "/")
	hostport, prefix := api, ""
	if i := strings.IndexByte(api, '/'); i >= 0 {
		hostport, prefix = api[:i], api[i:]
	}
	return &client{hostport: hostport, prefix: prefix}
}

// do sends one request as dart:io's HttpClient does and reads the whole answer.
func (c *client) do(method, path string, headers [][2]string, body []byte) (*http.Response, []byte) {
	if c.conn == nil {
		conn, err := net.Dial("tcp", c.hostport)
		if err != nil {
			die("connect %s: %v", c.hostport, err)
		}
		c.conn, c.br = conn, bufio.NewReader(conn)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s%s HTTP/1.1\r\n", method, c.prefix, path)
	fmt.Fprintf(&b, "user-agent: %s\r\n", userAgent)
	for _, h := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	fmt.Fprintf(&b, "content-length: %d\r\n", len(body))
	fmt.Fprintf(&b, "host: %s\r\n\r\n", c.hostport)
	b.Write(body)
	if _, err := c.conn.Write(b.Bytes()); err != nil {
		die("%s %s: %v", method, path, err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		die("%s %s: %v", method, path, err)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		die("%s %s: read body: %v", method, path, err)
	}
	if resp.Close {
		c.conn.Close()
		c.conn = nil
	}
	return resp, data
}

func (c *client) post(path string, body []byte, extra ...[2]string) {
	hdr := append([][2]string{{"content-type", "application/json"}}, extra...)
	resp, answer := c.do("POST", path, hdr, body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		die("RuntimeApiException: POST /2018-06-01%s answered %d: %s", path, resp.StatusCode, answer)
	}
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "Unhandled exception:\n"+format+"\n", args...)
	os.Exit(255)
}

// errorBody is runLambda's {"errorMessage","errorType","stackTrace"}.
func errorBody(message, typ string) []byte {
	return marshal(struct {
		Message string   `json:"errorMessage"`
		Type    string   `json:"errorType"`
		Stack   []string `json:"stackTrace"`
	}{message, typ, []string{stackLine}})
}

// marshal encodes like Dart's jsonEncode: no spaces, no HTML escaping.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		die("encode: %v", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

type request struct {
	kind    string // "apiGateway", "alb" or "raw"
	method  string
	path    string
	headers map[string]string
	query   map[string][]string
	body    []byte
}

// decode is Request.fromEvent (docs/protocol.md 3.1).
func decode(event []byte) (request, error) {
	raw := request{kind: "raw", body: event}
	trimmed := bytes.TrimLeft(event, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return raw, nil
	}
	var obj map[string]any
	if json.Unmarshal(event, &obj) != nil {
		return raw, nil
	}
	method, ok := obj["httpMethod"].(string)
	if !ok {
		return raw, nil
	}
	r := request{kind: "apiGateway", method: strings.ToUpper(method), path: "/",
		headers: map[string]string{}, query: map[string][]string{}}
	if rc, ok := obj["requestContext"].(map[string]any); ok && rc["elb"] != nil {
		r.kind = "alb"
	}
	if p, ok := obj["path"].(string); ok && p != "" {
		r.path = p
	}
	if h, ok := obj["headers"].(map[string]any); ok {
		for k, v := range h {
			if v != nil {
				r.headers[strings.ToLower(k)] = fmt.Sprint(v)
			}
		}
	}
	if h, ok := obj["multiValueHeaders"].(map[string]any); ok {
		for k, v := range h {
			if l, ok := v.([]any); ok && len(l) > 0 {
				parts := make([]string, len(l))
				for i, e := range l {
					parts[i] = fmt.Sprint(e)
				}
				r.headers[strings.ToLower(k)] = strings.Join(parts, ", ")
			}
		}
	}
	q := func(s string) string {
		if r.kind != "alb" {
			return s
		}
		if d, err := url.QueryUnescape(s); err == nil {
			return d
		}
		return s
	}
	if m, ok := obj["queryStringParameters"].(map[string]any); ok {
		for k, v := range m {
			if v != nil {
				r.query[q(k)] = []string{q(fmt.Sprint(v))}
			}
		}
	}
	if m, ok := obj["multiValueQueryStringParameters"].(map[string]any); ok {
		for k, v := range m {
			if l, ok := v.([]any); ok && len(l) > 0 {
				vals := make([]string, len(l))
				for i, e := range l {
					vals[i] = q(fmt.Sprint(e))
				}
				r.query[q(k)] = vals
			}
		}
	}
	r.body = nil
	if s, ok := obj["body"].(string); ok {
		if obj["isBase64Encoded"] == true {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return r, fmt.Errorf("FormatException: Invalid character")
			}
			r.body = b
		} else {
			r.body = []byte(s)
		}
	}
	return r, nil
}

var reasons = map[int]string{200: "OK", 404: "Not Found", 500: "Internal Server Error"}

// encode is encodeResponse (docs/protocol.md 3.3) for Response.text(text).
func encode(r request, status int, text string) []byte {
	if r.kind == "raw" {
		return []byte(text)
	}
	type proxy struct {
		StatusCode        int               `json:"statusCode"`
		StatusDescription string            `json:"statusDescription,omitempty"`
		Headers           map[string]string `json:"headers"`
		Body              string            `json:"body"`
		IsBase64Encoded   bool              `json:"isBase64Encoded"`
	}
	p := proxy{StatusCode: status, Headers: map[string]string{"content-type": "text/plain; charset=utf-8"}, Body: text}
	if r.kind == "alb" {
		p.StatusDescription = strconv.Itoa(status)
		if reason, ok := reasons[status]; ok {
			p.StatusDescription += " " + reason
		}
	}
	return marshal(p)
}

func main() {
	if subject := os.Getenv("DARTUP_LAMBDA_SUBJECT"); subject != "" {
		control := os.Getenv("DARTUP_LAMBDA_CONTROL")
		if control == "" {
			die("Bad state: runLambda: DARTUP_LAMBDA_SUBJECT and DARTUP_LAMBDA_CONTROL must both be set")
		}
		runNative(subject, control)
		return
	}
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		die("Bad state: runLambda: AWS_LAMBDA_RUNTIME_API is not set")
	}
	c := newClient(api)
	if os.Getenv("DARTMIMIC_INIT_FAIL") == "1" {
		c.post("/2018-06-01/runtime/init/error", errorBody("Bad state: init failed", "StateError"),
			[2]string{"lambda-runtime-function-error-type", "StateError"})
		die("Bad state: init failed")
	}
	for {
		resp, event := c.do("GET", "/2018-06-01/runtime/invocation/next", nil, nil)
		if resp.StatusCode != http.StatusOK {
			die("RuntimeApiException: GET /2018-06-01/runtime/invocation/next answered %d: %s", resp.StatusCode, event)
		}
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		if id == "" {
			die("RuntimeApiException: no Lambda-Runtime-Aws-Request-Id header")
		}
		if _, err := strconv.ParseInt(strings.TrimSpace(resp.Header.Get("Lambda-Runtime-Deadline-Ms")), 10, 64); err != nil {
			// runLambda falls back to now + 15 min; the Go server must send an integer.
			fmt.Fprintf(os.Stderr, "dartmimic: Lambda-Runtime-Deadline-Ms %q is not an integer\n", resp.Header.Get("Lambda-Runtime-Deadline-Ms"))
		}
		esc := url.PathEscape(id)
		req, err := decode(event)
		switch {
		case err != nil:
			c.post("/2018-06-01/runtime/invocation/"+esc+"/error", errorBody(err.Error(), "FormatException"),
				[2]string{"lambda-runtime-function-error-type", "FormatException"})
		case (req.kind == "raw" && string(req.body) == "throw") || (req.kind != "raw" && req.path == "/throw"):
			c.post("/2018-06-01/runtime/invocation/"+esc+"/error", errorBody("Bad state: boom", "StateError"),
				[2]string{"lambda-runtime-function-error-type", "StateError"})
		default:
			c.post("/2018-06-01/runtime/invocation/"+esc+"/response", encode(req, 200, "Hello, lambda world!"))
		}
	}
}
