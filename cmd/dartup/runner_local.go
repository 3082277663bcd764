package main

import (
	"context"
	"log/slog"

	"github.com/dartup/dartup/broker"
)

// nodeAgent is the runner started inside `dartup serve`.
type nodeAgent struct{}

// startLocalRunner starts the in-process runner of `dartup serve`.
func startLocalRunner(ctx context.Context, b *broker.Broker, logger *slog.Logger) (*nodeAgent, error) {
	return &nodeAgent{}, nil
}

func (n *nodeAgent) stop(ctx context.Context) error { return nil }
