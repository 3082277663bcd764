// Command bootstrap is the benchmark's AWS Lambda custom-runtime bootstrap,
// built with github.com/aws/aws-lambda-go: it answers every event with the
// event itself. dartup runs it through its Runtime API, the harness runs it by
// hand against a Runtime API stub (cold baseline), and the AWS Runtime
// Interface Emulator runs it when the harness is given --rie.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

func echo(_ context.Context, event json.RawMessage) (json.RawMessage, error) {
	return event, nil
}

func main() { lambda.Start(echo) }
