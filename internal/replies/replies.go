// Package replies answers NATS requests on behalf of callers without lending
// them dartup's rights. A reply subject is chosen by whoever sent the
// request; answering it publishes there with the answerer's permissions. A
// Replier answers only reply inboxes (clientsdk.IsReplySubject), counts and
// logs the requests it refuses, and publishes over its own connection, which
// in production is a reply-only one (named clientsdk.ReplyConnName, so that
// the server lets it publish to inboxes and nothing else).
package replies

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/loglimit"
	"github.com/nats-io/nats.go"
)

// logEvery bounds how often refusals are logged: a flood of hostile requests
// must not become a flood of log lines.
const logEvery = 10 * time.Second

// Replier answers requests over one connection. Its methods are safe for
// concurrent use; a nil *Replier refuses everything.
type Replier struct {
	nc      *nats.Conn
	extra   []string
	logger  *slog.Logger
	refused atomic.Uint64
	logged  loglimit.Every
}

// New returns a Replier publishing over nc; extra are additional reply
// prefixes (first subject tokens) allowed besides "_INBOX" and "_INBOX_APP".
// A nil logger discards.
func New(nc *nats.Conn, logger *slog.Logger, extra ...string) *Replier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Replier{nc: nc, extra: extra, logger: logger}
}

// Conn returns the connection replies are published on.
func (r *Replier) Conn() *nats.Conn { return r.nc }

// Allowed reports whether m may be answered: it has a reply subject and that
// subject is a reply inbox. A request without a reply subject is not
// answerable but not a refusal; any other reply subject is refused, counted
// and logged (at most once every 10 s), with what it asked for.
func (r *Replier) Allowed(m *nats.Msg) bool { return r.Check(m.Subject, m.Reply) }

// Check is Allowed for a request on subject with reply subject reply.
func (r *Replier) Check(subject, reply string) bool {
	if reply == "" {
		return false
	}
	if r != nil && clientsdk.IsReplySubject(reply, r.extra...) {
		return true
	}
	r.refuse(subject, reply)
	return false
}

func (r *Replier) refuse(subject, reply string) {
	if r == nil {
		return
	}
	n := r.refused.Add(1)
	if !r.logged.Allow(time.Now(), logEvery) {
		return
	}
	r.logger.Warn("refused a request whose reply subject is not an inbox (an app trying to make dartup publish elsewhere?)",
		"subject", clip(subject), "reply", clip(reply), "refused_total", n)
}

// Refused returns how many requests were refused for their reply subject.
func (r *Replier) Refused() uint64 {
	if r == nil {
		return 0
	}
	return r.refused.Load()
}

// Respond answers m with data when Allowed(m); it returns nats.ErrMsgNoReply
// otherwise, and the publish error (e.g. nats.ErrMaxPayload) when sending fails.
func (r *Replier) Respond(m *nats.Msg, data []byte) error {
	return r.RespondMsg(m, &nats.Msg{Data: data})
}

// RespondMsg answers m with reply (its Subject is set to m.Reply) when
// Allowed(m); it returns nats.ErrMsgNoReply otherwise.
func (r *Replier) RespondMsg(m, reply *nats.Msg) error {
	if !r.Allowed(m) {
		return nats.ErrMsgNoReply
	}
	reply.Subject = m.Reply
	return r.nc.PublishMsg(reply)
}

// RespondError answers m with e as a service error (see
// clientsdk.ErrorReply) when Allowed(m).
func (r *Replier) RespondError(m *nats.Msg, e *clientsdk.Error) error {
	return r.RespondMsg(m, clientsdk.ErrorReply(m.Reply, e))
}

// clip bounds a subject for the log.
func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
