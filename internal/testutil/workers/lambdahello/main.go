// Command lambdahello is a test bootstrap built with aws-lambda-go. It
// answers "Hello, EVENT!" and, for JSON events, acts on these fields:
// sleep_ms (sleep first; logs "sleeping pid=N" on stderr), panic (panic with
// that message), error (return an error of type HelloError), huge (return that
// many bytes), exit (exit with that code mid-request), pid (return the pid),
// env (return that environment variable), ctx (return the invocation's
// context: request id, ARN, deadline). With HELLO_INIT_ERROR set it posts
// /runtime/init/error and exits instead of serving.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Name    string `json:"name"`
	SleepMS int    `json:"sleep_ms"`
	Panic   string `json:"panic"`
	Error   string `json:"error"`
	Huge    int    `json:"huge"`
	Exit    *int   `json:"exit"`
	PID     bool   `json:"pid"`
	Env     string `json:"env"`
	Ctx     bool   `json:"ctx"`
	// Reply is answered as it is (e.g. a proxy response).
	Reply json.RawMessage `json:"reply"`
}

// HelloError is the error type a handler returns for {"error": "..."}.
type HelloError struct{ Msg string }

func (e *HelloError) Error() string { return e.Msg }

// BoomError is the value a handler panics with for {"panic": "..."}.
type BoomError struct{ Msg string }

func (e BoomError) Error() string { return e.Msg }

type handler struct{}

func (handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var e event
	if json.Unmarshal(payload, &e) != nil {
		s := strings.TrimSpace(string(payload))
		if s == "" {
			s = "world"
		}
		return []byte("Hello, " + s + "!"), nil
	}
	if e.SleepMS > 0 {
		fmt.Fprintf(os.Stderr, "sleeping pid=%d\n", os.Getpid())
		time.Sleep(time.Duration(e.SleepMS) * time.Millisecond)
	}
	switch {
	case len(e.Reply) > 0:
		return e.Reply, nil
	case e.Panic != "":
		panic(BoomError{e.Panic})
	case e.Error != "":
		return nil, &HelloError{e.Error}
	case e.Huge > 0:
		return bytes.Repeat([]byte("x"), e.Huge), nil
	case e.Exit != nil:
		os.Exit(*e.Exit)
	case e.PID:
		return []byte(strconv.Itoa(os.Getpid())), nil
	case e.Env != "":
		return []byte(os.Getenv(e.Env)), nil
	case e.Ctx:
		lc, _ := lambdacontext.FromContext(ctx)
		dl, _ := ctx.Deadline()
		return json.Marshal(map[string]any{"request_id": lc.AwsRequestID, "arn": lc.InvokedFunctionArn,
			"deadline_ms": dl.UnixMilli(), "function": lambdacontext.FunctionName, "memory": lambdacontext.MemoryLimitInMB,
			"event_bytes": len(payload), "client_custom": lc.ClientContext.Custom})
	}
	name := e.Name
	if name == "" {
		name = "world"
	}
	return []byte("Hello, " + name + "!"), nil
}

func main() {
	if os.Getenv("HELLO_INIT_ERROR") != "" {
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"errorMessage":"bad config","errorType":"InitFailed"}`))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "init error posted: %d\n", resp.StatusCode)
		os.Exit(1)
	}
	lambda.Start(handler{})
}
