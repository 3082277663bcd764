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

// WorkerPermissions lists what an app's workers may publish and subscribe to:
// the app's own events ("dartup.app.APP.>"), lambda requests ("lambda.>")
// and reply inboxes. The control API and JetStream's API are not among them.
func WorkerPermissions(app string) (publish, subscribe []string) {
	own := "dartup.app." + app + ".>"
	return []string{own, LambdaPrefix + ".>", "_INBOX.>"}, []string{own, "_INBOX.>"}
}
