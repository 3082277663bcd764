// Command lambdaevent is a test bootstrap built with aws-lambda-go that
// answers with everything it was given: the event exactly as it arrived
// (any JSON), and the invocation's client context and Cognito identity (the
// only values the runtime passes on from the request's headers), so that
// tests can check what a lambda sees, credentials above all.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Seen is the JSON answer.
type Seen struct {
	Event         json.RawMessage               `json:"event"`
	ClientContext lambdacontext.ClientContext   `json:"client_context"`
	Identity      lambdacontext.CognitoIdentity `json:"identity"`
}

func handle(ctx context.Context, event json.RawMessage) (Seen, error) {
	s := Seen{Event: event}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		s.ClientContext, s.Identity = lc.ClientContext, lc.Identity
	}
	return s, nil
}

func main() { lambda.Start(handle) }
