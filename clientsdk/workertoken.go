package clientsdk

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SecretsBucket is the KV bucket holding dartup's cluster-wide secrets.
const SecretsBucket = "DARTUP_SECRETS"

// WorkerSecretKey is the key, in SecretsBucket, of the HMAC secret that signs
// worker tokens.
const WorkerSecretKey = "worker-hmac"

// WorkerTokenPrefix starts every worker token: "dartup-worker.APP.NONCE.MAC",
// or "dartup-worker.APP.NONCE.WORKER.MAC" for a native lambda worker.
const WorkerTokenPrefix = "dartup-worker."

// WorkerToken returns the NATS token of app's workers: its name and its
// token nonce (AppSpec.TokenNonce) signed with secret. Any dartup server
// holding the same secret accepts it, while app exists with that nonce, and
// gives the connection the app's permissions (see WorkerPermissions). A new
// app of the same name gets a new nonce, so tokens of a removed app never
// work again.
func WorkerToken(secret []byte, app, nonce string) string {
	if nonce == "" {
		nonce = "0"
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(app + "." + nonce))
	return WorkerTokenPrefix + app + "." + nonce + "." + hex.EncodeToString(m.Sum(nil))
}

// LambdaWorkerToken returns the NATS token of one native lambda worker
// (ProtocolNATS): an app token that also names the worker,
// "dartup-worker.APP.NONCE.WORKER.MAC", the worker id signed with the rest
// (and kept apart from app tokens: the MAC covers "worker:" first). It
// gives the app's permissions plus subscribe on that worker's private
// subject (LambdaWorkerPermissions), and nothing of its siblings'.
func LambdaWorkerToken(secret []byte, app, nonce, worker string) string {
	if nonce == "" {
		nonce = "0"
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("worker:" + app + "." + nonce + "." + worker))
	return WorkerTokenPrefix + app + "." + nonce + "." + worker + "." + hex.EncodeToString(m.Sum(nil))
}

// VerifyWorkerToken returns the app and nonce a worker token was made for,
// the worker id of a LambdaWorkerToken ("" for an app token), and whether
// its signature is valid for secret. The caller still checks that the app
// exists with that nonce.
func VerifyWorkerToken(secret []byte, token string) (app, nonce, worker string, ok bool) {
	rest, ok := strings.CutPrefix(token, WorkerTokenPrefix)
	if !ok || len(secret) == 0 {
		return "", "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 3 || len(parts) > 4 || ValidateName(parts[0]) != nil || parts[1] == "" {
		return "", "", "", false
	}
	app, nonce = parts[0], parts[1]
	want := WorkerToken(secret, app, nonce)
	if len(parts) == 4 {
		if worker = parts[2]; !ValidWorkerID(worker) {
			return "", "", "", false
		}
		want = LambdaWorkerToken(secret, app, nonce, worker)
	}
	return app, nonce, worker, hmac.Equal([]byte(want), []byte(token))
}

// NewTokenNonce returns a fresh AppSpec.TokenNonce: 16 random hex digits.
func NewTokenNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// WorkerInboxPrefix returns the reply-inbox prefix of app's workers,
// "_INBOX_APP.APP" (given to them as NATS_INBOX_PREFIX): a worker may
// subscribe only to its own app's inboxes, never to other clients' "_INBOX.>"
// replies, and dartup answers its requests there (see IsReplySubject).
func WorkerInboxPrefix(app string) string { return AppInboxPrefix + "." + app }

// WorkerPermissions lists what an app's workers may publish and subscribe to:
// they publish the app's own subjects ("dartup.app.APP.>"), lambda requests
// ("lambda.*") and why one found no responders ("dartup.lambda.why.*",
// answered by the brokers with what the lambda's caller may know), async
// invocations of any lambda ("dartup.async.*": stored by
// the async stream, whose acknowledgement comes back to the worker's inbox
// when it publishes as a request) and replies (to reply inboxes: "_INBOX.>", "_INBOX_APP.>" and
// the server's extra reply prefixes), and subscribe to the app's subjects and
// their own inboxes ("_INBOX_APP.APP.>"). Nothing else: not the control API,
// JetStream's API, the presence or node subjects, another app's subjects, or
// another client's inbox for reading. Replies are allowed by subject, never
// through the server's response permissions, which would let a worker answer
// a message it sent itself with any reply subject, and so publish anywhere.
func WorkerPermissions(app string, extraReplyPrefixes ...string) (publish, subscribe []string) {
	own := "dartup.app." + app + ".>"
	publish = append([]string{own, LambdaPrefix + ".*", LambdaWhyPrefix + ".*", AsyncPrefix + ".*"}, ReplyPublishPermissions(extraReplyPrefixes...)...)
	return publish, []string{own, WorkerInboxPrefix(app) + ".>"}
}

// LambdaWorkerPermissions is WorkerPermissions plus subscribe on native
// worker worker's private subject (LambdaWorkerSubject) and, for direct
// mode, on its lambda's requests in the runners' queue group only
// ("lambda.APP dartup-lambda": a worker takes one request at a time, it
// cannot read them all): what a LambdaWorkerToken grants. Its siblings'
// subjects stay out of reach, and no worker may publish to any worker's
// subject.
func LambdaWorkerPermissions(app, worker string, extraReplyPrefixes ...string) (publish, subscribe []string) {
	publish, subscribe = WorkerPermissions(app, extraReplyPrefixes...)
	return publish, append(subscribe, LambdaWorkerSubject(app, worker), LambdaSubject(app)+" "+LambdaQueueGroup)
}
