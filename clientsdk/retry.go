package clientsdk

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TransientWindow bounds how long an operation is retried on transient
// JetStream errors (a cluster electing new leaders after losing a server
// answers nothing for a few seconds).
const TransientWindow = 30 * time.Second

// IsTransient reports whether err is the kind a cluster gives while it
// elects leaders: timeouts and missing stream responses. Servers answer such
// failures with *Error 503 "Unavailable", which clients retry.
func IsTransient(err error) bool { return transient(err) }

// transient reports whether err is the kind a cluster gives while it elects
// leaders: timeouts and missing stream responses.
func transient(err error) bool {
	if err == nil {
		return false
	}
	if e, ok := AsError(err); ok {
		return e.Code == 503 && e.Type == "Unavailable"
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoStreamResponse) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case errClusterNotAvailable, errClusterNoPeers, errClusterNotLeader:
			return true
		}
	}
	return false
}

// JetStream API error codes of a cluster between leaders (nats-server's
// JSClusterNotAvailErr, JSClusterNoPeersErrF, JSClusterNotLeaderErr).
const (
	errClusterNoPeers      jetstream.ErrorCode = 10005
	errClusterNotAvailable jetstream.ErrorCode = 10008
	errClusterNotLeader    jetstream.ErrorCode = 10009
)

// retryTransient runs f until it succeeds, fails with a lasting error, ctx
// ends, or TransientWindow has passed; each try gets at most perTry (0: no
// bound of its own, for work like uploads whose length depends on the data).
func retryTransient(ctx context.Context, perTry time.Duration, f func(ctx context.Context) error) error {
	return retry(ctx, transient, func() error {
		tctx, cancel := ctx, context.CancelFunc(func() {})
		if perTry > 0 {
			tctx, cancel = context.WithTimeout(ctx, perTry)
		}
		defer cancel()
		return f(tctx)
	})
}

// retryUnavailable runs f again while it fails with *Error 503 "Unavailable",
// until ctx ends or TransientWindow passes.
func retryUnavailable(ctx context.Context, f func() error) error {
	return retry(ctx, func(err error) bool {
		e, ok := AsError(err)
		return ok && e.Code == 503 && e.Type == "Unavailable"
	}, f)
}

// retry runs f while its error is retryable, with a backoff from 200 ms to
// 2 s, until ctx ends or TransientWindow has passed.
func retry(ctx context.Context, retryable func(error) bool, f func() error) error {
	deadline := time.Now().Add(TransientWindow)
	delay := 200 * time.Millisecond
	for {
		err := f()
		if !retryable(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}
