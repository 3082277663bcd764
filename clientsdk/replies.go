package clientsdk

import "strings"

// Reply subjects are capabilities: whoever answers a request publishes to the
// reply subject the requester chose, with the answerer's permissions. dartup
// answers requests on behalf of callers (lambda results and errors, control
// API answers, presence probes) only when the reply subject is an inbox, and
// sends those answers over a connection that may publish nothing else.

// InboxPrefix is the first token of the reply inboxes of ordinary clients
// (nats.go, the nats CLI, the dartup CLI): "_INBOX.>".
const InboxPrefix = "_INBOX"

// AppInboxPrefix is the first token of app workers' reply inboxes:
// "_INBOX_APP.APP.>" (see WorkerInboxPrefix).
const AppInboxPrefix = "_INBOX_APP"

// ReplyConnName starts the name of a connection that asks for reply-only
// rights: a connection named "dartup-replies…" may publish only to reply
// inboxes ("_INBOX.>", "_INBOX_APP.>" and the server's extra reply prefixes)
// and subscribe to nothing, whatever its credentials would allow. Runners
// answer every request through such a connection, so that no reply subject a
// caller picks can make them publish anywhere else.
const ReplyConnName = "dartup-replies"

// ReplyPrefixes returns the first tokens of the subjects dartup answers
// requests on: InboxPrefix, AppInboxPrefix, then extra (the reply prefixes an
// operator configured for clients with a custom inbox prefix).
func ReplyPrefixes(extra ...string) []string {
	return append([]string{InboxPrefix, AppInboxPrefix}, extra...)
}

// ReplyPublishPermissions returns the publish allow-list of a reply-only
// connection: "P.>" for each of ReplyPrefixes(extra...).
func ReplyPublishPermissions(extra ...string) []string {
	var out []string
	for _, p := range ReplyPrefixes(extra...) {
		out = append(out, p+".>")
	}
	return out
}

// IsReplySubject reports whether dartup may answer a request whose reply
// subject is s: a literal subject (no wildcards, no empty tokens, no
// whitespace) of at least two tokens whose first token is one of
// ReplyPrefixes(extra...). "$JS.API.…", "dartup.api.…", "$KV.…" and every
// other subject are refused.
func IsReplySubject(s string, extra ...string) bool {
	first, rest, ok := strings.Cut(s, ".")
	if !ok || rest == "" || !literalSubject(s) {
		return false
	}
	for _, p := range ReplyPrefixes(extra...) {
		if first == p {
			return true
		}
	}
	return false
}

// ValidateReplyPrefix checks an operator-configured reply prefix: one subject
// token (letters, digits, '_' and '-'), not one of dartup's or JetStream's
// own ("dartup", "lambda", "$JS", …).
func ValidateReplyPrefix(p string) error {
	switch {
	case p == "" || len(p) > MaxNameLength:
		return Errorf(400, "InvalidReplyPrefix", "reply prefix %q must be 1 to %d characters", p, MaxNameLength)
	case p == "dartup" || p == LambdaPrefix || strings.HasPrefix(p, "$"):
		return Errorf(400, "InvalidReplyPrefix", "reply prefix %q is one of dartup's or NATS's own subjects; pick another (e.g. _MYINBOX)", p)
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return Errorf(400, "InvalidReplyPrefix", "reply prefix %q has %q; use letters, digits, '_' and '-' (one subject token)", p, r)
		}
	}
	return nil
}

// literalSubject reports whether s is a plain subject: no wildcard
// characters at all, no empty tokens, no whitespace or control characters.
func literalSubject(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '*' || c == '>' {
			return false
		}
	}
	return true
}
