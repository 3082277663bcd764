package main

import (
	"log/slog"

	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
)

// newLambdaHost returns what hosts lambdas on a node (nil until the lambdas
// package is wired in).
func newLambdaHost(nc *nats.Conn, logger *slog.Logger) (runner.LambdaHost, error) {
	return nil, nil
}
