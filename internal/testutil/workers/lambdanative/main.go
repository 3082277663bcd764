// Command lambdanative is a test worker of the native lambda protocol, built
// on app.ServeLambda. It answers "Hello, EVENT!" and, for JSON events, acts
// on these fields: spin_us (keep a CPU busy that long first), sleep_ms
// (sleep first; logs "sleeping pid=N request=ID" on stderr), error (return an error of type NativeError), panic (panic with
// that message), huge (return that many bytes), exit (exit with that code
// mid-request), pid (return the pid), env (return that environment
// variable), ctx (return the invocation: request id, deadline, trace).
//
// And, to play a hostile worker with its real credentials:
//
//   - forge: send done notices for that request id and for the previous
//     invocation's (a replay), then neither answer nor send its own done;
//   - twice: send the done notice twice (once itself, before its answer,
//     and once more through ServeLambda) and answer "twice";
//   - ready: send a ready notice instead of answering;
//   - forge_batch: in direct mode, answer "forged", and 20 ms later send a
//     batched done notice of that many made-up records (then a line that
//     cannot be read);
//   - steal: try to subscribe to that subject on a second connection with
//     the worker's credentials; answers "refused" or "allowed";
//   - inject: try to publish an event to that subject (another worker's);
//     answers "refused" or "allowed";
//   - inflight: write that text over its in-flight file
//     (DARTUP_LAMBDA_INFLIGHT; "\u0000" as written), then exit 1 mid-request;
//   - inflight_fifo: put a FIFO in its in-flight file's place (a worker
//     running as dartup's own user can), then exit 1 mid-request.
//
// With LAMBDANATIVE_HANDOVER=1 it ignores direct mode (as the Dart package
// does) and is handed its events. With LAMBDANATIVE_NOSUB=FILE, while FILE
// exists (the worker removes it: once), it plays a worker that says it
// takes direct mode's offer but never subscribes: a ready notice, then
// nothing, not even on its Dartup-Stop.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/clientsdk/app"
	"github.com/nats-io/nats.go"
)

type event struct {
	Name     string  `json:"name"`
	SleepMS  int     `json:"sleep_ms"`
	SpinUS   int     `json:"spin_us"`
	Error    string  `json:"error"`
	Panic    string  `json:"panic"`
	Huge     int     `json:"huge"`
	Exit     *int    `json:"exit"`
	PID      bool    `json:"pid"`
	Env      string  `json:"env"`
	Ctx      bool    `json:"ctx"`
	Forge    string  `json:"forge"`
	Twice    bool    `json:"twice"`
	Ready    bool    `json:"ready"`
	Batch    int     `json:"forge_batch"`
	Steal    string  `json:"steal"`
	Inject   string  `json:"inject"`
	Inflight *string `json:"inflight"`
	// InflightFIFO replaces the in-flight file with a FIFO, then exits.
	InflightFIFO bool `json:"inflight_fifo"`
}

// NativeError is the error type a handler returns for {"error": "..."}.
type NativeError struct{ Msg string }

func (e *NativeError) Error() string { return e.Msg }

// hostile is the worker's side channel to NATS, with its own credentials.
type hostile struct {
	nc     *nats.Conn
	errs   chan error
	lastID string
}

func (h *hostile) conn() *nats.Conn {
	if h.nc == nil {
		h.errs = make(chan error, 16)
		c, err := app.Connect(context.Background(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { h.errs <- err }))
		if err != nil {
			fmt.Fprintln(os.Stderr, "lambdanative:", err)
			os.Exit(3)
		}
		h.nc = c.NATS()
	}
	return h.nc
}

// refused does op and reports whether the server refused it.
func (h *hostile) refused(op func(nc *nats.Conn) error) string {
	nc := h.conn()
	for len(h.errs) > 0 {
		<-h.errs
	}
	if err := op(nc); err != nil {
		return "refused: " + err.Error()
	}
	_ = nc.Flush()
	select {
	case err := <-h.errs:
		if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
			return "refused"
		}
		return "error: " + err.Error()
	case <-time.After(2 * time.Second):
		return "allowed"
	}
}

func (h *hostile) notice(id string) {
	m := &nats.Msg{Subject: os.Getenv(clientsdk.EnvLambdaControl), Header: nats.Header{
		clientsdk.HeaderNotice: {clientsdk.NoticeDone}, clientsdk.HeaderRequestID: {id}, clientsdk.HeaderLambdaStatus: {"200"}}}
	_ = h.conn().PublishMsg(m)
}

func (h *hostile) handle(ctx context.Context, payload []byte) ([]byte, error) {
	inv, _ := app.InvocationFromContext(ctx)
	defer func() { h.lastID = inv.RequestID }()
	var e event
	if json.Unmarshal(payload, &e) != nil {
		s := strings.TrimSpace(string(payload))
		if s == "" {
			s = "world"
		}
		return []byte("Hello, " + s + "!"), nil
	}
	if e.SpinUS > 0 && e.SpinUS <= 1_000_000 {
		for end := time.Now().Add(time.Duration(e.SpinUS) * time.Microsecond); time.Now().Before(end); {
		}
	}
	if e.SleepMS > 0 {
		// In direct mode dartup hears of a request that outlives a
		// millisecond (the took notice): the line that tells a test to
		// kill the worker comes after that.
		lead := min(e.SleepMS, 20)
		time.Sleep(time.Duration(lead) * time.Millisecond)
		fmt.Fprintf(os.Stderr, "sleeping pid=%d request=%s\n", os.Getpid(), inv.RequestID)
		time.Sleep(time.Duration(e.SleepMS-lead) * time.Millisecond) // past the deadline too, as a stuck function does
	}
	switch {
	case e.Error != "":
		return nil, &NativeError{e.Error}
	case e.Panic != "":
		panic(e.Panic)
	case e.Huge > 0:
		return bytes.Repeat([]byte("x"), e.Huge), nil
	case e.Exit != nil:
		os.Exit(*e.Exit)
	case e.PID:
		return []byte(strconv.Itoa(os.Getpid())), nil
	case e.Env != "":
		return []byte(os.Getenv(e.Env)), nil
	case e.Ctx:
		dl, _ := ctx.Deadline()
		return json.Marshal(map[string]any{"request_id": inv.RequestID, "deadline_ms": dl.UnixMilli(), "traceparent": inv.TraceParent,
			"client_context": inv.ClientContext})
	case e.Forge != "":
		h.notice(e.Forge)
		h.notice(h.lastID)
		_ = h.conn().Flush()
		<-ctx.Done() // no answer, no done: dartup must still be waiting
		time.Sleep(time.Hour)
	case e.Twice:
		return h.twice(inv)
	case e.Batch > 0:
		var b []byte
		for range e.Batch {
			b = clientsdk.AppendDoneRecord(b, clientsdk.DoneRecord{RequestID: clientsdk.NewRequestID(), Status: 500, ErrorType: "Forged", Ran: time.Hour})
		}
		nc := h.conn()
		go func() {
			time.Sleep(20 * time.Millisecond) // after this request's done notice: free in dartup's view
			_ = nc.Publish(os.Getenv(clientsdk.EnvLambdaDirectControl), append(b, "cannot be read\n"...))
			_ = nc.Flush()
		}()
		return []byte("forged"), nil
	case e.Ready:
		time.Sleep(50 * time.Millisecond) // in direct mode, after the took notice
		m := &nats.Msg{Subject: os.Getenv(clientsdk.EnvLambdaControl), Header: nats.Header{clientsdk.HeaderNotice: {clientsdk.NoticeReady}}}
		_ = h.conn().PublishMsg(m)
		_ = h.conn().Flush()
		<-ctx.Done()
		time.Sleep(time.Hour)
	case e.Steal != "":
		return []byte(h.refused(func(nc *nats.Conn) error { _, err := nc.Subscribe(e.Steal, func(*nats.Msg) {}); return err })), nil
	case e.InflightFIFO:
		path := os.Getenv(clientsdk.EnvLambdaInflight)
		_ = os.Remove(path)
		_ = syscall.Mkfifo(path, 0o600)
		os.Exit(1)
	case e.Inflight != nil:
		_ = os.WriteFile(os.Getenv(clientsdk.EnvLambdaInflight), []byte(*e.Inflight), 0)
		os.Exit(1)
	case e.Inject != "":
		return []byte(h.refused(func(nc *nats.Conn) error { return nc.Publish(e.Inject, []byte("forged")) })), nil
	}
	name := e.Name
	if name == "" {
		name = "world"
	}
	return []byte("Hello, " + name + "!"), nil
}

// twice sends a done notice of its own before ServeLambda sends one too.
func (h *hostile) twice(inv app.Invocation) ([]byte, error) {
	h.notice(inv.RequestID)
	_ = h.conn().Flush()
	return []byte("twice"), nil
}

func main() {
	if os.Getenv("LAMBDANATIVE_HANDOVER") == "1" {
		// Play a worker that does not know direct mode (the Dart
		// package's): dartup must hand it its events.
		_ = os.Unsetenv(clientsdk.EnvLambdaDirect)
	}
	h := &hostile{}
	if f := os.Getenv("LAMBDANATIVE_NOSUB"); f != "" && os.Remove(f) == nil {
		_ = h.conn().PublishMsg(&nats.Msg{Subject: os.Getenv(clientsdk.EnvLambdaDirectControl), Header: nats.Header{
			clientsdk.HeaderNotice: {clientsdk.NoticeReady}, clientsdk.HeaderLambdaDirect: {"1"}}})
		_ = h.nc.Flush()
		select {}
	}
	if err := app.ServeLambda(context.Background(), h.handle); err != nil {
		fmt.Fprintln(os.Stderr, "lambdanative:", err)
		os.Exit(1)
	}
}
