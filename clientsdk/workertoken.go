package clientsdk

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SecretsBucket is the KV bucket holding dartup's cluster-wide secrets.
const SecretsBucket = "DARTUP_SECRETS"

// WorkerSecretKey is the key, in SecretsBucket, of the HMAC secret that signs
// worker tokens.
const WorkerSecretKey = "worker-hmac"

// WorkerTokenPrefix starts every worker token: "dartup-worker.APP.MAC".
const WorkerTokenPrefix = "dartup-worker."

// WorkerToken returns the NATS token of app's workers: its name signed with
// secret. Any dartup server holding the same secret accepts it and gives the
// connection the app's permissions (its events, lambda requests, replies).
func WorkerToken(secret []byte, app string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(app))
	return WorkerTokenPrefix + app + "." + hex.EncodeToString(m.Sum(nil))
}

// VerifyWorkerToken returns the app a worker token belongs to, and whether its
// signature is valid for secret.
func VerifyWorkerToken(secret []byte, token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, WorkerTokenPrefix)
	if !ok || len(secret) == 0 {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", false
	}
	app := rest[:i]
	if ValidateName(app) != nil {
		return "", false
	}
	want := WorkerToken(secret, app)
	return app, hmac.Equal([]byte(want), []byte(token))
}

// WorkerInboxPrefix returns the reply-inbox prefix of app's workers,
// "_INBOX_APP.APP" (given to them as NATS_INBOX_PREFIX): a worker may
// subscribe only to its own app's inboxes, never to other clients' "_INBOX.>"
// replies, and dartup answers its requests there (see IsReplySubject).
func WorkerInboxPrefix(app string) string { return AppInboxPrefix + "." + app }

// WorkerPermissions lists what an app's workers may publish and subscribe to:
// they publish the app's own subjects ("dartup.app.APP.>") and lambda
// requests ("lambda.*"), and subscribe to the app's subjects and their own
// inboxes ("_INBOX_APP.APP.>"). Replies to requests they received are allowed
// separately (one reply per request), so other clients' inboxes are neither
// readable nor writable. The control API, JetStream's API, the presence and
// node subjects are not among them.
func WorkerPermissions(app string) (publish, subscribe []string) {
	own := "dartup.app." + app + ".>"
	return []string{own, LambdaPrefix + ".*"}, []string{own, WorkerInboxPrefix(app) + ".>"}
}
