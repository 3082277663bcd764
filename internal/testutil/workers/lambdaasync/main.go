// Command lambdaasync is a test bootstrap built with aws-lambda-go for
// async invocations. Each call appends "REQUEST_ID NODE PID start" and then
// "... ok" or "... fail" to ASYNC_DIR/calls.log (one write per line, so
// that workers on several nodes can share the file), and answers
// {"request_id", "node", "event"}. ASYNC_MODE says when it fails (with an
// error of type AsyncTestError): "fail-first" the first time it sees a
// request id (it remembers ids as files in ASYNC_DIR/seen), "fail" always,
// anything else never. An event with "sleep_ms" sleeps that long first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// AsyncTestError is the error a failing call returns.
type AsyncTestError struct{ Msg string }

func (e *AsyncTestError) Error() string { return e.Msg }

type handler struct{ dir, mode, node string }

func (h handler) record(id, what string) {
	f, err := os.OpenFile(filepath.Join(h.dir, "calls.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer f.Close()
	_ = f.Chmod(0o666) // workers of other nodes may run as other users (despite the umask)
	_, _ = fmt.Fprintf(f, "%s %s %d %s\n", id, h.node, os.Getpid(), what)
}

// firstSight reports whether id is new, remembering it.
func (h handler) firstSight(id string) bool {
	seen := filepath.Join(h.dir, "seen")
	if os.Mkdir(seen, 0o777) == nil {
		_ = os.Chmod(seen, 0o777) // despite the umask
	}
	f, err := os.OpenFile(filepath.Join(h.dir, "seen", id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if errors.Is(err, os.ErrExist) {
		return false
	}
	if f != nil {
		f.Close()
	}
	return true
}

func (h handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	lc, _ := lambdacontext.FromContext(ctx)
	id := lc.AwsRequestID
	h.record(id, "start")
	var ev struct {
		SleepMS int `json:"sleep_ms"`
	}
	_ = json.Unmarshal(payload, &ev)
	time.Sleep(time.Duration(ev.SleepMS) * time.Millisecond)
	if h.mode == "fail" || (h.mode == "fail-first" && h.firstSight(id)) {
		h.record(id, "fail")
		return nil, &AsyncTestError{Msg: "failing on purpose (" + h.mode + ") for " + id}
	}
	h.record(id, "ok")
	event := json.RawMessage(payload)
	if !json.Valid(payload) {
		event, _ = json.Marshal(string(payload))
	}
	return json.Marshal(map[string]any{"request_id": id, "node": h.node, "event": event})
}

func main() {
	lambda.Start(handler{dir: os.Getenv("ASYNC_DIR"), mode: os.Getenv("ASYNC_MODE"), node: os.Getenv("DARTUP_NODE")})
}
