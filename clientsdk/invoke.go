package clientsdk

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// Invoke calls lambda name with event and returns the function's result.
// Errors are *Error with the codes of the invocation protocol: 404 unknown
// lambda, 500 function error, 502 worker died, 504 timeout, 413 too large,
// 429 throttled, 503 when nothing hosts it.
func (c *Client) Invoke(ctx context.Context, name string, event []byte) ([]byte, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout+5*time.Second)
		defer cancel()
	}
	msg, err := c.nc.RequestWithContext(ctx, LambdaSubject(name), event)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, Errorf(503, "NoRunner", "nothing answers %s: no dartup server or runner is connected", LambdaSubject(name))
		}
		return nil, err
	}
	if e := ErrorFromMsg(msg); e != nil {
		return nil, e
	}
	return msg.Data, nil
}
