package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The native protocol as runLambda speaks it when DARTUP_LAMBDA_SUBJECT is
// set (docs/protocol.md section 7): the NATS lines of lib/src/nats.dart and
// lib/src/native.dart, byte for byte, each turn of the Dart event loop in
// one write.

// natsConn is the Dart NatsConnection's side of one TCP connection.
type natsConn struct {
	c     net.Conn
	br    *bufio.Reader
	ready bool // after the handshake: further INFOs are skipped
}

// dialNATS does the handshake of docs/protocol.md 4.1 with the connection
// name runLambda uses and the worker's token.
func dialNATS(natsURL, token, name string) *natsConn {
	u, err := url.Parse(natsURL)
	if err != nil || u.Host == "" {
		die("NATS URL %s: not nats://host:port", natsURL)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		die("DartUpError: cannot connect to NATS at %s: %v (503 ConnectFailed)", u.Host, err)
	}
	nc := &natsConn{c: c, br: bufio.NewReader(c)}
	if l := nc.line(); !strings.HasPrefix(l, "INFO ") {
		die("ProtocolError: first line %q", l)
	}
	connect := `CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":` + string(marshal(name)) +
		`,"lang":"dart","version":"0.1.0","protocol":1,"echo":false,"headers":true,"no_responders":true`
	if token != "" {
		connect += `,"auth_token":` + string(marshal(token))
	}
	nc.write(connect + "}\r\nPING\r\n")
	nc.pong()
	nc.ready = true
	return nc
}

func (nc *natsConn) write(s string) {
	if _, err := nc.c.Write([]byte(s)); err != nil {
		die("DartUpError: writing to NATS failed: %v (503 ConnectionClosed)", err)
	}
}

// line reads one control line; PINGs are answered, +OK and INFO skipped.
func (nc *natsConn) line() string {
	for {
		s, err := nc.br.ReadString('\n')
		if err != nil {
			die("DartUpError: NATS server closed the connection (503 ConnectionClosed)")
		}
		s = strings.TrimSuffix(s, "\r\n")
		switch {
		case s == "PING":
			nc.write("PONG\r\n")
		case s == "+OK", strings.HasPrefix(s, "INFO ") && nc.ready:
		case strings.HasPrefix(s, "-ERR"):
			fmt.Fprintf(os.Stderr, "dartup: NATS server: %s\n", s)
			if strings.Contains(strings.ToLower(s), "authorization") {
				die("DartUpError: NATS server refused the connection: %s (401 AuthorizationViolation)", s)
			}
		default:
			return s
		}
	}
}

// pong waits for the PONG of a PING sent.
func (nc *natsConn) pong() {
	if l := nc.line(); l != "PONG" {
		die("ProtocolError: want PONG, got %q", l)
	}
}

// msg is a delivered MSG or HMSG.
type msg struct {
	subject string
	headers map[string]string // first value; names as sent
	data    []byte
}

// header is NatsMessage.header: the name compared without case.
func (m msg) header(name string) (string, bool) {
	for k, v := range m.headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func (nc *natsConn) next() msg {
	f := strings.Fields(nc.line())
	var hdr, total int
	switch {
	case len(f) >= 4 && len(f) <= 5 && f[0] == "HMSG":
		hdr, _ = strconv.Atoi(f[len(f)-2])
		total, _ = strconv.Atoi(f[len(f)-1])
	case len(f) >= 3 && len(f) <= 4 && f[0] == "MSG":
		total, _ = strconv.Atoi(f[len(f)-1])
	default:
		die("ProtocolError: unknown operation: %q", strings.Join(f, " "))
	}
	b := make([]byte, total+2)
	if _, err := io.ReadFull(nc.br, b); err != nil {
		die("DartUpError: NATS server closed the connection (503 ConnectionClosed)")
	}
	m := msg{subject: f[1], headers: map[string]string{}, data: b[hdr:total]}
	lines := strings.Split(string(b[:hdr]), "\r\n")
	for _, l := range lines[min(1, len(lines)):] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) != "" {
			if _, seen := m.headers[strings.TrimSpace(k)]; !seen {
				m.headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return m
}

// hpub is NatsConnection.publish with headers, in insertion order.
func hpub(subject string, headers [][2]string, data []byte) string {
	var h strings.Builder
	h.WriteString("NATS/1.0\r\n")
	for _, kv := range headers {
		h.WriteString(kv[0] + ": " + kv[1] + "\r\n")
	}
	h.WriteString("\r\n")
	return fmt.Sprintf("HPUB %s %d %d\r\n%s%s\r\n", subject, h.Len(), h.Len()+len(data), h.String(), data)
}

// runNative is runNativeLambda with the hello handler.
func runNative(subject, control string) {
	name := os.Getenv("AWS_LAMBDA_FUNCTION_NAME")
	nc := dialNATS(envOr("NATS_URL", "nats://127.0.0.1:4222"), os.Getenv("NATS_TOKEN"), "dartup-dart/0.1.0 "+name)
	if os.Getenv("DARTMIMIC_INIT_FAIL") == "1" {
		// DARTMIMIC_FLOOD=N: N unknown notices first, which keep dartup's
		// dispatcher busy while the process exits (a test of the order).
		if n, _ := strconv.Atoi(os.Getenv("DARTMIMIC_FLOOD")); n > 0 {
			junk := hpub(control, [][2]string{{"Dartup-Notice", "junk"}}, nil)
			nc.write(strings.Repeat(junk, min(n, 100000)))
		}
		nc.write(hpub(control, [][2]string{{"Dartup-Notice", "init-error"}, {"Dartup-Error-Type", "StateError"}},
			errorBody("Bad state: init failed", "StateError")) + "PING\r\n")
		nc.pong()
		nc.close()
		die("Bad state: init failed")
	}
	nc.write("SUB " + subject + " 1\r\nPING\r\n")
	nc.pong()
	nc.write(hpub(control, [][2]string{{"Dartup-Notice", "ready"}}, nil))
	for {
		m := nc.next()
		if _, stop := m.header("Dartup-Stop"); stop {
			nc.close()
			os.Exit(0)
		}
		nc.write(serveNative(control, m))
	}
}

// serveNative is _serve: the done notice, then the answer, in one write.
func serveNative(control string, m msg) string {
	id, _ := m.header("Dartup-Request-Id")
	status, typ, message := 200, "", ""
	var result []byte
	req, err := decode(m.data)
	switch {
	case err != nil:
		status, typ, message = 500, "FormatException", err.Error()
	case (req.kind == "raw" && string(req.body) == "throw") || (req.kind != "raw" && req.path == "/throw"):
		status, typ, message = 500, "StateError", "Bad state: boom"
	case req.kind == "raw" && string(req.body) == "huge":
		result = bytes.Repeat([]byte("x"), 6<<20+200)
		status, typ = 413, "Function.ResponseSizeTooLarge"
		message = fmt.Sprintf("Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes).", len(result), 6<<20+100)
	default:
		result = encode(req, 200, "Hello, lambda world!")
	}
	done := [][2]string{{"Dartup-Notice", "done"}, {"Dartup-Request-Id", id}, {"Dartup-Status", strconv.Itoa(status)}}
	if typ != "" {
		done = append(done, [2]string{"Dartup-Error-Type", typ})
	}
	out := hpub(control, done, nil)
	reply, _ := m.header("Dartup-Reply")
	if reply == "" {
		return out
	}
	if status == 200 {
		return out + fmt.Sprintf("PUB %s %d\r\n%s\r\n", reply, len(result), result)
	}
	cut := cutMessage(message)
	body := marshal(struct {
		Code    int    `json:"code"`
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}{status, typ, cut})
	return out + hpub(reply, [][2]string{{"Nats-Service-Error", headerValue(cut)}, {"Nats-Service-Error-Code", strconv.Itoa(status)}}, body)
}

// close is NatsConnection.close: PING, PONG, then FIN.
func (nc *natsConn) close() {
	nc.write("PING\r\n")
	nc.pong()
	nc.c.Close()
}

// cutMessage is the Dart cutMessage: at most 32 KiB of UTF-8.
func cutMessage(s string) string {
	const max = 32 << 10
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d more bytes cut)", len(s)-max)
}

// headerValue is the Dart headerValue: CR, LF → space; spaces and tabs trimmed.
func headerValue(s string) string {
	return strings.Trim(strings.NewReplacer("\r", " ", "\n", " ").Replace(s), " \t")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
