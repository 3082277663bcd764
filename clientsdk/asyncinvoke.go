package clientsdk

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxAsyncEventBytes is the largest async event stored: the 6 MiB a
// lambda takes. A larger one is refused with *Error 413.
const MaxAsyncEventBytes = 6 << 20

// HeaderErrorCode is the dead-letter header with the last error's code
// (500 function error, 502 worker died, 504 timeout, …).
const HeaderErrorCode = "Dartup-Error-Code"

// AsyncCountersStream holds running counts of each lambda's async
// invocations (JetStream counters) on "dartup.counters.NAME.KIND"; KIND is
// CounterRetried.
const AsyncCountersStream = "DARTUP_ASYNC_COUNTERS"

// CountersPrefix is the subject prefix of AsyncCountersStream.
const CountersPrefix = "dartup.counters"

// CounterRetried counts the retries of a lambda's async events.
const CounterRetried = "retried"

// CounterSubject returns the subject of counter kind of lambda name:
// "dartup.counters.NAME.KIND".
func CounterSubject(name, kind string) string { return CountersPrefix + "." + name + "." + kind }

// AsyncStats describe a lambda's async invocations, in AppInfo.
type AsyncStats struct {
	// Queued events wait for their first delivery.
	Queued uint64 `json:"queued"`
	// InFlight events were handed out and not yet finished: running,
	// waiting for a worker, or waiting for their retry's backoff.
	InFlight uint64 `json:"in_flight"`
	// Retried counts the retries of failed attempts since the lambda was
	// pushed (kept across restarts).
	Retried uint64 `json:"retried"`
	// DeadLettered is the number of the lambda's events in the dead
	// letters (DLQStream) now.
	DeadLettered uint64 `json:"dead_lettered"`
}

// AsyncMsg returns the message that stores an async invocation of lambda
// name: subject "dartup.async.NAME", HeaderRequestID id, and msgID as
// JetStream's message id (Nats-Msg-Id: the same publish retried within two
// minutes is stored once).
func AsyncMsg(name, id, msgID string, event []byte) *nats.Msg {
	m := nats.NewMsg(AsyncSubject(name))
	m.Header.Set(HeaderRequestID, id)
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	m.Data = event
	return m
}

// AsyncStoreError turns a failed JetStream publish of an async event into
// an *Error: 507 AsyncQueueFull when the async stream is at its limit (new
// events are refused, stored ones kept), 507 DiskFull when the store is,
// 413 for an event over the stream's size limit, 503 Unavailable when
// JetStream did not answer. Other errors are returned as they are.
func AsyncStoreError(err error) error {
	var api *jetstream.APIError
	switch {
	case err == nil:
		return nil
	case IsStoreFull(err):
		return Errorf(507, TypeDiskFull, "the event was not stored: the server's store is full (%v); free space or raise --max-store", err)
	case errors.As(err, &api) && api.ErrorCode == jsStreamStoreFailed:
		return Errorf(507, "AsyncQueueFull", "the event was not stored: the async queue (%s) refuses new events (%s); they are taken again once the lambdas have run the ones waiting", AsyncStream, api.Description)
	case errors.As(err, &api) && api.ErrorCode == jsMessageTooLarge:
		return Errorf(413, "RequestEntityTooLargeException", "the event is over the async queue's size limit: %s", api.Description)
	case errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) || transient(err):
		return Errorf(503, "Unavailable", "JetStream did not confirm that the event was stored (%v); try again: the same request id is stored once", err)
	}
	return err
}

// JetStream's error codes for a store that refused a message
// (JSStreamStoreFailedF: a discard-new stream at its limit) and for a
// message over the stream's size limit (JSStreamMessageExceedsMaximumErr).
const (
	jsStreamStoreFailed jetstream.ErrorCode = 10077
	jsMessageTooLarge   jetstream.ErrorCode = 10054
)

// InvokeAsync stores event as an async (Event) invocation of lambda name
// and returns its request id once JetStream has stored it: the lambda runs
// it later, at least once, retried on failure (AppSpec's Lambda.Async), and
// gets the id as Lambda-Runtime-Aws-Request-Id on every attempt. Errors:
// *Error 404 for no such app, 403 for a daemon, 413 for an event over 6
// MiB, 507 when the async queue or the store is full, 503 when JetStream
// does not answer.
func (c *Client) InvokeAsync(ctx context.Context, name string, event []byte) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if len(event) > MaxAsyncEventBytes {
		return "", Errorf(413, "RequestEntityTooLargeException", "the event is %d bytes, over the async payload limit of %d (6 MiB)", len(event), MaxAsyncEventBytes)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, TransientWindow)
		defer cancel()
	}
	if err := c.lambdas.check(ctx, c.nc, name); err != nil {
		return "", err
	}
	id := NewRequestID()
	js, err := jetstream.New(c.nc)
	if err != nil {
		return "", err
	}
	err = retryTransient(ctx, DefaultRequestTimeout, func(ctx context.Context) error {
		_, err := js.PublishMsg(ctx, AsyncMsg(name, id, id, event))
		return err
	})
	if err != nil {
		return "", AsyncStoreError(err)
	}
	return id, nil
}

// lambdaCheckTTL is how long InvokeAsync trusts that a name is a lambda.
const lambdaCheckTTL = 2 * time.Second

// lambdaCache remembers the names found to be lambdas, so that a burst of
// InvokeAsync calls reads the apps bucket once per name and lambdaCheckTTL.
type lambdaCache struct {
	mu    sync.Mutex
	kv    jetstream.KeyValue
	until map[string]time.Time
}

// check returns nil when app name is a lambda, else *Error 404 or 403.
func (lc *lambdaCache) check(ctx context.Context, nc *nats.Conn, name string) error {
	lc.mu.Lock()
	fresh := time.Now().Before(lc.until[name])
	kv := lc.kv
	lc.mu.Unlock()
	if fresh {
		return nil
	}
	if kv == nil {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		if kv, err = js.KeyValue(ctx, AppsBucket); err != nil {
			return AsyncStoreError(err)
		}
	}
	e, err := kv.Get(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return Errorf(404, "NotFound", "no lambda named %q; push one with `dartup push FILE --lambda --name %s`", name, name)
	case err != nil:
		return AsyncStoreError(err)
	}
	var s AppSpec
	if err := json.Unmarshal(e.Value(), &s); err != nil || s.Kind != KindLambda {
		return Errorf(403, "NotALambda", "%s is a daemon, not a lambda; only lambdas can be invoked", name)
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.kv = kv
	if lc.until == nil || len(lc.until) > 10000 {
		lc.until = map[string]time.Time{}
	}
	lc.until[name] = time.Now().Add(lambdaCheckTTL)
	return nil
}

// RawJSON returns b as JSON: b itself when it is valid JSON, else b as a
// JSON string (invalid UTF-8 replaced), for events and results shown in
// JSON documents (AsyncOutcome, DeadLetter).
func RawJSON(b []byte) json.RawMessage {
	if len(b) > 0 && json.Valid(b) {
		return json.RawMessage(b)
	}
	out, _ := json.Marshal(string(b)) // invalid UTF-8 becomes U+FFFD
	return out
}
