package broker

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// workerSecret holds the HMAC secret of worker tokens, shared by every server
// of a cluster through SecretsBucket.
type workerSecret struct{ v atomic.Pointer[[]byte] }

func (w *workerSecret) get() []byte {
	if w == nil {
		return nil
	}
	if p := w.v.Load(); p != nil {
		return *p
	}
	return nil
}

// ensureWorkerSecret reads the worker secret from SecretsBucket (created by
// EnsureAssets), creating the secret (compare-and-set, so all servers agree)
// when it does not exist yet.
func ensureWorkerSecret(ctx context.Context, js jetstream.JetStream) ([]byte, error) {
	kv, err := js.KeyValue(ctx, clientsdk.SecretsBucket)
	if err != nil {
		return nil, fmt.Errorf("open KV bucket %s: %w", clientsdk.SecretsBucket, err)
	}
	for range 3 {
		e, err := kv.Get(ctx, clientsdk.WorkerSecretKey)
		if err == nil {
			return e.Value(), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, err
		}
		s := make([]byte, 32)
		_, _ = rand.Read(s)
		if _, err := kv.Create(ctx, clientsdk.WorkerSecretKey, s); err == nil {
			return s, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, err
		}
	}
	return nil, errors.New("could not agree on the worker secret")
}

// checkWorkerToken admits a worker token with its app's permissions (and
// a native lambda worker's token with its private subject too): its
// signature must be valid and its app must exist with the token's nonce (a
// removed app's tokens, even of a new app of the same name, are refused).
func (a *authenticator) checkWorkerToken(c server.ClientAuthentication, token string) bool {
	app, nonce, worker, ok := clientsdk.VerifyWorkerToken(a.workers.get(), token)
	if ok {
		ok = a.appHasNonce(app, nonce)
	}
	if !ok {
		a.logins.warn("nats-worker-token", "refused NATS connection: invalid worker token, or its app was removed", "remote", addrString(c.RemoteAddress()))
		return false
	}
	pub, sub := clientsdk.WorkerPermissions(app, a.replyPrefixes...)
	if worker != "" { // a native lambda worker: its own private subject too
		pub, sub = clientsdk.LambdaWorkerPermissions(app, worker, a.replyPrefixes...)
	}
	c.RegisterUser(&server.User{Username: workerUser(app), Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}})
	return true
}

// workerUser is the user name of app's worker connections.
func workerUser(app string) string { return "worker:" + app }

// appHasNonce reports whether app exists with token nonce (an empty one, of
// a spec stored before nonces, counts as "0").
func (a *authenticator) appHasNonce(app, nonce string) bool {
	r := a.apps.Load()
	if r == nil {
		return false // not serving yet: no worker can exist before the broker
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Not limited: only a token the server's secret signed gets here.
	s, st := r.find(ctx, app, false)
	if st != specFound {
		return false
	}
	want := s.TokenNonce
	if want == "" {
		want = "0"
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(nonce)) == 1
}
