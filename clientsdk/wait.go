package clientsdk

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Outcome is where a push or start of an app has got to.
type Outcome string

// Outcomes of a deployment (push, start) as WaitDeployed sees them.
const (
	// OutcomeRunning: every instance of the revision runs (daemons, for at
	// least their min_uptime, up to 1 s), or a node hosts it (lambdas).
	OutcomeRunning Outcome = "running"
	// OutcomeError: the app is in error (a start that fails for good, a
	// crash loop, a lambda that cannot start anywhere).
	OutcomeError Outcome = "error"
	// OutcomePending: no live node can take an instance (see the message).
	OutcomePending Outcome = "pending"
	// OutcomeTimeout: none of the above before the wait ended.
	OutcomeTimeout Outcome = "timeout"
	// OutcomeDetached: not waited for.
	OutcomeDetached Outcome = "detached"
)

// TypeNotRunning is the Type of the *Error 409 WaitDeployed returns when the
// app ends in error or pending, or does not run in time.
const TypeNotRunning = "NotRunning"

// deployed decides about an app at revision rev: whether it has settled
// (done), and how. upSince is when the client first saw every daemon
// instance of rev running with the same pids (zero: not yet), now is the
// client's clock; pending counts only once it has lasted pendingGrace.
func deployed(spec AppSpec, sum AppSummary, rev uint64, upSince, pendingSince, now time.Time) (Outcome, bool) {
	if sum.State == AppError {
		return OutcomeError, true
	}
	pending := isPending(sum)
	if spec.Kind == KindLambda {
		for _, in := range sum.Instances {
			if in.SpecRevision >= rev && in.State != StateErrored && in.State != StateLost {
				return OutcomeRunning, true
			}
		}
	} else if !upSince.IsZero() && now.Sub(upSince) >= min(spec.Restart.MinUptime.D(), time.Second) {
		return OutcomeRunning, true
	}
	if pending && !pendingSince.IsZero() && now.Sub(pendingSince) >= pendingGrace {
		return OutcomePending, true
	}
	return "", false
}

// pendingGrace is how long an instance must stay pending before a wait
// gives up on it (a node may be about to report its new load).
const pendingGrace = 1500 * time.Millisecond

// allRunning reports whether every desired instance of a daemon runs at
// revision rev, and returns their pids (to tell a restart from a steady run).
func allRunning(spec AppSpec, sum AppSummary, rev uint64) (string, bool) {
	if spec.Kind != KindDaemon || sum.Running < spec.Instances {
		return "", false
	}
	needReady := spec.WithDefaults().ReadyProbe().Kind != ProbeNone
	pids := ""
	n := 0
	for _, in := range sum.Instances {
		if in.Instance >= spec.Instances {
			continue
		}
		if in.State != StateRunning || in.SpecRevision < rev || (needReady && !in.Ready) {
			return "", false
		}
		pids += fmt.Sprintf("%d,", in.PID)
		n++
	}
	return pids, n == spec.Instances
}

// WaitDeployed waits, polling every 100 ms, until app name at revision rev
// (the bucket revision Push or Start returned) runs, or ends in error or
// pending, or ctx ends. It returns the outcome and the last summary; the
// error is an *Error 409 wrapping ErrNotRunning for every outcome but
// OutcomeRunning (Type TypeNotRunning; its message is the app's), or a
// transport error.
func (c *Client) WaitDeployed(ctx context.Context, name string, rev uint64) (Outcome, *AppSummary, error) {
	var last *AppSummary
	var upSince, pendingSince time.Time
	lastPIDs := ""
	for {
		info, err := c.Describe(ctx, name)
		if err == nil {
			last = &info.Summary
			if err := rolloutFailed(info.Spec, info.Summary, rev); err != nil {
				return OutcomeError, last, err
			}
			now := time.Now()
			if pids, ok := allRunning(info.Spec, info.Summary, rev); ok {
				if pids != lastPIDs {
					upSince, lastPIDs = now, pids
				}
			} else {
				upSince, lastPIDs = time.Time{}, ""
			}
			if isPending(info.Summary) {
				if pendingSince.IsZero() {
					pendingSince = now
				}
			} else {
				pendingSince = time.Time{}
			}
			if out, done := deployed(info.Spec, info.Summary, rev, upSince, pendingSince, now); done {
				return out, last, notRunning(out, last)
			}
		} else if e, ok := AsError(err); ok && e.Code == 404 {
			return OutcomeError, last, err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return OutcomeTimeout, nil, ctx.Err()
			}
			return OutcomeTimeout, last, notRunning(OutcomeTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rolloutFailed returns an *Error 409 TypeNotRunning when the rollout of
// revision rev (or later) stopped on an instance: its new worker did not
// get ready, and the instances keep the version before.
func rolloutFailed(spec AppSpec, sum AppSummary, rev uint64) error {
	for _, in := range sum.Instances {
		if in.Instance < spec.Instances && in.FailedRevision >= rev && in.FailedRevision != 0 {
			return &Error{Code: 409, Type: TypeNotRunning, Message: fmt.Sprintf("%s #%d: %s", sum.Name, in.Instance, in.LastError)}
		}
	}
	return nil
}

func isPending(sum AppSummary) bool {
	for _, in := range sum.Instances {
		if in.State == StatePending {
			return true
		}
	}
	return sum.Kind == KindLambda && strings.HasPrefix(sum.Message, "pending:")
}

func notRunning(out Outcome, sum *AppSummary) error {
	if out == OutcomeRunning {
		return nil
	}
	msg := fmt.Sprintf("%s is %s", sum.Name, sum.State)
	if sum.Message != "" {
		msg += " - " + sum.Message
	}
	if out == OutcomeTimeout {
		msg = "still not running when the wait ended: " + msg
	}
	return &Error{Code: 409, Type: TypeNotRunning, Message: msg}
}

// WaitStopped waits, polling every 100 ms, until no process of app name is
// left: no instance with a pid, no warm lambda worker. It returns the last
// summary, or ctx's error.
func (c *Client) WaitStopped(ctx context.Context, name string) (*AppSummary, error) {
	for {
		info, err := c.Describe(ctx, name)
		if err != nil {
			return nil, err
		}
		if stopped(info.Summary) {
			return &info.Summary, nil
		}
		select {
		case <-ctx.Done():
			return &info.Summary, fmt.Errorf("%s still has processes: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func stopped(sum AppSummary) bool {
	if sum.WarmWorkers > 0 {
		return false
	}
	for _, in := range sum.Instances {
		if in.PID > 0 || in.State == StateStopping || in.State == StateRunning {
			return false
		}
	}
	return true
}

// WaitRemoved waits, polling every 100 ms, until app name is gone: its spec
// and every status its nodes wrote (a node deletes an instance's status
// once its process is gone). It returns ctx's error when that takes longer.
func (c *Client) WaitRemoved(ctx context.Context, name string) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	kv, err := js.KeyValue(ctx, StatusBucket)
	if err != nil {
		return fmt.Errorf("open %s: %w", StatusBucket, err)
	}
	for {
		keys, err := kv.ListKeysFiltered(ctx, name+".>")
		if err != nil {
			return err
		}
		left := 0
		for range keys.Keys() {
			left++
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still has %d instances stopping: %w", name, left, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pushedBy says who pushes, for AppSpec.PushedBy: the connection's user (or
// the local user's name) at this host.
func (c *Client) pushedBy() string {
	who := c.nc.Opts.User
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	host, _ := os.Hostname()
	return who + "@" + host
}
