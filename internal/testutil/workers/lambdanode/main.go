// Command lambdanode is a test bootstrap built with aws-lambda-go that tells
// which node answered: it sleeps LAMBDANODE_SLEEP_MS milliseconds (default 5)
// and returns "NODE EVENT", NODE being DARTUP_NODE, the id of the runner node
// that spawned it.
package main

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

type handler struct {
	node  string
	sleep time.Duration
}

func (h handler) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	time.Sleep(h.sleep)
	return append([]byte(h.node+" "), payload...), nil
}

func main() {
	ms := 5
	if v, err := strconv.Atoi(os.Getenv("LAMBDANODE_SLEEP_MS")); err == nil && v >= 0 {
		ms = v
	}
	lambda.Start(handler{node: os.Getenv("DARTUP_NODE"), sleep: time.Duration(ms) * time.Millisecond})
}
