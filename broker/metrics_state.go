package broker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// stateCache holds what /metrics reports about the cluster's state, fed by
// watches of StatusBucket and NodesBucket (started by the first scrape), so
// that a scrape reads memory, never the buckets. The apps come from the
// lambda router's cache of AppsBucket.
type stateCache struct {
	b      *Broker
	logger *slog.Logger

	once    sync.Once
	ready   chan struct{} // closed once both buckets were read
	failed  error         // why the watches could not start (set before ready closes)
	cancel  context.CancelFunc
	done    sync.WaitGroup
	status  *kvMirror[clientsdk.InstanceStatus]
	nodes   *kvMirror[nodeSeen]
	started sync.Mutex // held while starting or stopping
	stopped bool
}

// nodeSeen is a node's entry and when its last heartbeat was stored (the
// server's clock, as nodesNow judges it).
type nodeSeen struct {
	node clientsdk.Node
	at   time.Time
}

func newStateCache(b *Broker, logger *slog.Logger) *stateCache {
	return &stateCache{b: b, logger: logger, ready: make(chan struct{}),
		status: newKVMirror(decodeStatus), nodes: newKVMirror(decodeNode)}
}

// decodeStatus reads a status entry (an instance's or a lambda's per-node
// one); other keys (the gateways' health probes) are skipped.
func decodeStatus(e jetstream.KeyValueEntry) (clientsdk.InstanceStatus, bool) {
	var st clientsdk.InstanceStatus
	if json.Unmarshal(e.Value(), &st) != nil || clientsdk.ValidateName(st.App) != nil {
		return st, false
	}
	if _, _, ok := clientsdk.ParseInstanceKey(e.Key()); ok {
		return st, st.Lambda == nil
	}
	return st, st.Lambda != nil && strings.HasPrefix(e.Key(), st.App+".node-")
}

func decodeNode(e jetstream.KeyValueEntry) (nodeSeen, bool) {
	var n clientsdk.Node
	if json.Unmarshal(e.Value(), &n) != nil || n.ID == "" {
		return nodeSeen{}, false
	}
	return nodeSeen{node: n, at: e.Created()}, true
}

// ensure starts the watches (once) and waits up to d for both buckets to
// have been read.
func (c *stateCache) ensure(ctx context.Context, d time.Duration) error {
	c.once.Do(c.start)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ready:
		return c.failed
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("the buckets were not read within " + d.String())
	}
}

// start follows both buckets in the background; a bucket that cannot be
// opened or watched now (a cluster electing a leader) is tried again.
func (c *stateCache) start() {
	c.started.Lock()
	defer c.started.Unlock()
	if c.stopped {
		c.failed = errors.New("the server is stopping")
		close(c.ready)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	var both sync.WaitGroup
	both.Add(2)
	c.done.Go(func() { c.status.follow(ctx, c.b.js, clientsdk.StatusBucket, c.logger, both.Done) })
	c.done.Go(func() { c.nodes.follow(ctx, c.b.js, clientsdk.NodesBucket, c.logger, both.Done) })
	go func() { both.Wait(); close(c.ready) }()
}

// stop ends the watches and waits for them.
func (c *stateCache) stop() {
	c.started.Lock()
	c.stopped = true
	cancel := c.cancel
	c.started.Unlock()
	if cancel != nil {
		cancel()
	}
	c.done.Wait()
}

// kvMirror is a bucket's entries decoded, kept up to date by a watch.
type kvMirror[T any] struct {
	decode func(jetstream.KeyValueEntry) (T, bool)
	mu     sync.RWMutex
	m      map[string]T
}

func newKVMirror[T any](decode func(jetstream.KeyValueEntry) (T, bool)) *kvMirror[T] {
	return &kvMirror[T]{decode: decode, m: map[string]T{}}
}

// follow watches bucket until ctx ends, calling ready once its entries
// were first read (or ctx ended). After a broken watch the entries are
// read again into a new map, which replaces the old one once complete (so
// deletions missed in between do not linger).
func (k *kvMirror[T]) follow(ctx context.Context, js jetstream.JetStream, bucket string, logger *slog.Logger, ready func()) {
	readyOnce := sync.OnceFunc(ready)
	defer readyOnce()
	for ctx.Err() == nil {
		w, err := k.watch(ctx, js, bucket)
		if err != nil {
			logger.Warn("cannot watch a bucket for the metrics; retrying", "bucket", bucket, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		fresh := map[string]T{}
		for e := range w.Updates() {
			if e == nil {
				k.mu.Lock()
				k.m, fresh = fresh, nil
				k.mu.Unlock()
				readyOnce()
				continue
			}
			k.apply(fresh, e)
		}
		_ = w.Stop()
	}
}

// watch opens bucket and watches all of it.
func (k *kvMirror[T]) watch(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyWatcher, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return kv.WatchAll(ctx)
}

// apply takes one entry into fresh (while the first reading is not
// complete) or into the live map.
func (k *kvMirror[T]) apply(fresh map[string]T, e jetstream.KeyValueEntry) {
	var v T
	ok := false
	if e.Operation() == jetstream.KeyValuePut {
		v, ok = k.decode(e)
	}
	if fresh == nil {
		k.mu.Lock()
		defer k.mu.Unlock()
		fresh = k.m
	}
	if ok {
		fresh[e.Key()] = v
	} else {
		delete(fresh, e.Key())
	}
}

// values returns a copy of the entries.
func (k *kvMirror[T]) values() []T {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]T, 0, len(k.m))
	for _, v := range k.m {
		out = append(out, v)
	}
	return out
}

// specs returns the apps the router knows (with their defaults).
func (r *lambdaRouter) specs() []clientsdk.AppSpec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]clientsdk.AppSpec, 0, len(r.apps))
	for _, s := range r.apps {
		out = append(out, s)
	}
	return out
}
