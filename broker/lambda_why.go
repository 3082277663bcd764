package broker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// Why a request on lambda.NAME found no responders. No dartup server
// subscribes lambda.NAME: only the runners hosting NAME do, so each request
// is delivered once, and one that nobody takes is refused by the NATS server
// at once ("no responders", atomically with the runners' subscriptions). The
// callers that can — the HTTP gateway, the async dispatcher, clientsdk's
// Invoke (hence `dartup invoke`) — then ask why, here in process or on
// clientsdk.LambdaWhySubject(NAME), and answer with the cause.

// hosted reports whether a runner hosts lambda name now: one answers the
// presence probe on clientsdk.LambdaHostedSubject(name). It is asked only
// after a request found no responders; its answer is reused for presenceTTL
// only, so that a flood of requests for a lambda nobody hosts costs one
// probe per period, and an answer is never much older than the request it
// explains (a stale "not hosted" is a refusal, never a lost request).
func (r *lambdaRouter) hosted(ctx context.Context, name string) bool {
	r.mu.RLock()
	p, ok := r.presence[name]
	r.mu.RUnlock()
	if ok && time.Since(p.at) < presenceTTL {
		return p.hosted
	}
	pctx, cancel := context.WithTimeout(ctx, hostedProbeTimeout)
	defer cancel()
	_, err := r.b.nc.RequestWithContext(pctx, clientsdk.LambdaHostedSubject(name), nil)
	hosted := !errors.Is(err, nats.ErrNoResponders)
	r.mu.Lock()
	if r.presence == nil || len(r.presence) >= maxMissing {
		r.presence = map[string]presenceAt{}
	}
	r.presence[name] = presenceAt{hosted: hosted, at: time.Now()}
	r.mu.Unlock()
	return hosted
}

// presenceTTL is how long a presence probe's answer is reused.
const presenceTTL = 100 * time.Millisecond

// presenceAt is a presence probe's answer and when it came.
type presenceAt struct {
	hosted bool
	at     time.Time
}

// lookup classifies a request for name: a nil error means "invoke it";
// otherwise the error to answer with. With checkHosted (after a request
// found no responders), a lambda no runner hosts is a 503 (or a 502 when
// it cannot start), and nil means a runner hosts it now.
func (r *lambdaRouter) lookup(ctx context.Context, name string, checkHosted bool) (clientsdk.AppSpec, *clientsdk.Error) {
	s, st := r.find(ctx, name, true)
	switch {
	case st == specUnchecked: // it may have been pushed a moment ago: not final
		return s, clientsdk.Errorf(503, "LookupThrottled", "lambda %q is not known to this server yet, and too many unknown names are being asked about to look it up now; try again in a moment", name)
	case st == specMissing:
		return s, clientsdk.Errorf(404, "NotFound", "no lambda named %q; push one with `dartup push FILE --lambda --name %s`", name, name)
	case s.Kind != clientsdk.KindLambda:
		return s, clientsdk.Errorf(403, "NotALambda", "%s is a daemon, not a lambda; only lambdas can be invoked", name)
	case !checkHosted || r.hosted(ctx, name):
	case s.Stopped:
		return s, clientsdk.Errorf(503, "Stopped", "lambda %s is stopped; start it with `dartup start %s`", name, name)
	default:
		cause, pending := r.cachedStartFailure(ctx, s)
		switch {
		case cause != "" && !pending:
			return s, clientsdk.Errorf(502, "Runtime.StartError", "lambda %s cannot start: %s", name, cause)
		case cause != "":
			return s, clientsdk.Errorf(503, "NoRunner", "no runner hosts lambda %s: %s", name, cause)
		}
		return s, clientsdk.Errorf(503, "NoRunner", "no runner hosts lambda %s right now; check `dartup nodes`", name)
	}
	return s, nil
}

// why says why a request on lambda.NAME found no responders: the error to
// answer with, or nil when a runner hosts name now (send it again).
func (r *lambdaRouter) why(ctx context.Context, name string) *clientsdk.Error {
	_, e := r.lookup(ctx, name, true)
	return e
}

// cachedStartFailure is startFailure, reused for causeTTL per revision.
func (r *lambdaRouter) cachedStartFailure(ctx context.Context, spec clientsdk.AppSpec) (cause string, pending bool) {
	r.mu.RLock()
	c, ok := r.causes[spec.Name]
	r.mu.RUnlock()
	if ok && c.revision == spec.Revision && time.Since(c.at) < causeTTL {
		return c.cause, c.pending
	}
	cause, pending = r.startFailure(ctx, spec)
	r.mu.Lock()
	if r.causes == nil || len(r.causes) >= maxMissing {
		r.causes = map[string]cachedCause{}
	}
	r.causes[spec.Name] = cachedCause{revision: spec.Revision, cause: cause, pending: pending, at: time.Now()}
	r.mu.Unlock()
	return cause, pending
}

// startFailure returns why no live node hosts lambda spec: the causes of
// the nodes that tried and could not (their errored status entries for its
// revision), or, with pending, why no node may host it; "" when unknown.
func (r *lambdaRouter) startFailure(ctx context.Context, spec clientsdk.AppSpec) (cause string, pending bool) {
	if r.b.api == nil {
		return "", false
	}
	sum, err := r.b.api.summarize(ctx, spec)
	switch {
	case err != nil:
		return "", false
	case sum.State == clientsdk.AppError:
		return strings.TrimPrefix(sum.Message, "cannot start: "), false
	case strings.HasPrefix(sum.Message, "pending: "):
		return strings.TrimPrefix(sum.Message, "pending: "), true
	}
	return "", false
}

// answerWhy answers a request on clientsdk.LambdaWhySubject(NAME) with why's
// error, or an empty reply when a runner hosts NAME now. It answers only
// inbox reply subjects, over the broker's reply-only connection.
func (r *lambdaRouter) answerWhy(m *nats.Msg) {
	if !r.b.replies.Allowed(m) {
		return
	}
	name := strings.TrimPrefix(m.Subject, clientsdk.LambdaWhyPrefix+".")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if e := r.why(ctx, name); e != nil {
		err = r.b.replies.RespondError(m, e)
	} else {
		err = r.b.replies.Respond(m, nil)
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.answerFailed(name, err)
	}
}

// answerFailed logs a failed answer on the why subject: the first, then at
// most one line per answerLogEvery with the count since.
func (r *lambdaRouter) answerFailed(name string, err error) {
	n := r.failedAnswers.Add(1)
	if !r.failedLogged.Allow(time.Now(), answerLogEvery) {
		return
	}
	r.logger.Warn("cannot answer why a lambda took no request", "app", name, "err", err, "failed_total", n)
}

// answerLogEvery bounds the log lines about failed answers.
const answerLogEvery = 10 * time.Second
