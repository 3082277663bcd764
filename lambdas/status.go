package lambdas

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// reportInterval bounds how often one lambda's status entry is rewritten;
// changes in between are coalesced.
const reportInterval = 100 * time.Millisecond

// reporter writes each deployed lambda's per-node status (warm workers and
// stats) to the status bucket when it changes.
type reporter struct {
	m     *Manager
	mu    sync.Mutex // held while writing or deleting an entry
	dirty map[string]bool
	dmu   sync.Mutex
	wake  chan struct{}
	done  chan struct{}
	exit  chan struct{}
}

func startReporter(m *Manager) *reporter {
	r := &reporter{m: m, dirty: map[string]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{}), exit: make(chan struct{})}
	go r.loop()
	return r
}

func (r *reporter) kick(name string) {
	r.dmu.Lock()
	r.dirty[name] = true
	r.dmu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *reporter) loop() {
	defer close(r.exit)
	for {
		select {
		case <-r.done:
			return
		case <-r.wake:
		}
		r.dmu.Lock()
		names := r.dirty
		r.dirty = map[string]bool{}
		r.dmu.Unlock()
		for name := range names {
			r.write(name)
		}
		select {
		case <-r.done:
			return
		case <-time.After(reportInterval):
		}
	}
}

// write puts name's status entry, unless name is no longer deployed.
func (r *reporter) write(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.m
	f := m.current(name)
	if f == nil {
		return
	}
	st, warm, ok := m.Stats(name)
	if !ok {
		return
	}
	s := clientsdk.InstanceStatus{
		App: name, Instance: -1, Node: m.opts.nodeID, State: clientsdk.StateStopped,
		WarmWorkers: warm, Lambda: &st, SpecRevision: f.spec.Revision, UpdatedAt: time.Now().UTC(),
	}
	if warm > 0 {
		s.State = clientsdk.StateRunning
	}
	b, _ := json.Marshal(s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.opts.status.Put(ctx, clientsdk.LambdaStatusKey(name, m.opts.nodeID), b); err != nil {
		m.logger.Warn("cannot write lambda status", "app", name, "err", err)
	}
}

// remove deletes name's status entry (after Undeploy).
func (r *reporter) remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.m.opts.status.Delete(ctx, clientsdk.LambdaStatusKey(name, r.m.opts.nodeID)); err != nil {
		r.m.logger.Warn("cannot delete lambda status", "app", name, "err", err)
	}
}

// stop ends the reporter's loop.
func (r *reporter) stop(ctx context.Context) {
	close(r.done)
	select {
	case <-r.exit:
	case <-ctx.Done():
	}
}
