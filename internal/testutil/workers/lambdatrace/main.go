// Command lambdatrace is a test bootstrap built with aws-lambda-go that
// answers, as a JSON object, the trace context it was given: the
// _X_AMZN_TRACE_ID environment variable (which aws-lambda-go sets from the
// Runtime API's Lambda-Runtime-Trace-Id), the trace id in the handler's
// context, and the traceparent, tracestate and X-Amzn-Trace-Id headers of
// its event (an API Gateway v1 proxy request; any other event has none).
package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

// Echo is the answer.
type Echo struct {
	EnvTraceID     string `json:"env_trace_id"`
	ContextTraceID string `json:"context_trace_id"`
	Traceparent    string `json:"traceparent"`
	Tracestate     string `json:"tracestate"`
	AmznTraceID    string `json:"amzn_trace_id"`
	Headers        int    `json:"traceparent_headers"`
}

func handle(ctx context.Context, raw json.RawMessage) (Echo, error) {
	var req events.APIGatewayProxyRequest
	_ = json.Unmarshal(raw, &req) // a raw event has no headers
	h := http.Header(req.MultiValueHeaders)
	e := Echo{EnvTraceID: os.Getenv("_X_AMZN_TRACE_ID"), Traceparent: h.Get("traceparent"),
		Tracestate: h.Get("tracestate"), AmznTraceID: h.Get("X-Amzn-Trace-Id"), Headers: len(h.Values("traceparent"))}
	e.ContextTraceID, _ = ctx.Value("x-amzn-trace-id").(string)
	return e, nil
}

func main() { lambda.Start(handle) }
