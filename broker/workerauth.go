package broker

import (
	"context"
	"crypto/rand"
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

// checkWorkerToken admits a worker token with its app's permissions.
func (a *authenticator) checkWorkerToken(c server.ClientAuthentication, token string) bool {
	app, ok := clientsdk.VerifyWorkerToken(a.workers.get(), token)
	if !ok {
		a.logins.warn("nats-worker-token", "refused NATS connection: invalid worker token", "remote", addrString(c.RemoteAddress()))
		return false
	}
	pub, sub := clientsdk.WorkerPermissions(app)
	c.RegisterUser(&server.User{Username: "worker:" + app, Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
		// A worker may answer the requests it received, once each.
		Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}})
	return true
}
