package lambdas

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// reportInterval is how often the reporter looks at pending changes;
// changes in between are coalesced.
const reportInterval = 100 * time.Millisecond

// statsInterval bounds how often an entry is rewritten for stats alone
// (invocations); worker changes are written within reportInterval.
const statsInterval = time.Second

// sameRefresh is how long an entry that did not change is not written
// again.
const sameRefresh = time.Minute

// reporter writes each deployed lambda's per-node status (warm workers and
// stats) to the status bucket when it changes.
type reporter struct {
	m     *Manager
	mu    sync.Mutex      // held while writing or deleting an entry
	dirty map[string]bool // name → urgent (its workers changed)
	last  map[string]time.Time
	// written is each entry as last written (without its time), and when
	// (guarded by mu): an entry that did not change is not written again
	// for sameRefresh.
	written map[string]writtenEntry
	dmu     sync.Mutex
	wake    chan struct{}
	// urgent wakes the loop also while it waits for stats to come due:
	// a worker change is written at once.
	urgent chan struct{}
	done   chan struct{}
	exit   chan struct{}
}

func startReporter(m *Manager) *reporter {
	r := &reporter{m: m, dirty: map[string]bool{}, last: map[string]time.Time{}, written: map[string]writtenEntry{},
		wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1), done: make(chan struct{}), exit: make(chan struct{})}
	go r.loop()
	return r
}

// kick marks name's entry for rewriting: urgent when its workers changed,
// otherwise (stats only) at most every statsInterval.
func (r *reporter) kick(name string, urgent bool) {
	r.dmu.Lock()
	r.dirty[name] = r.dirty[name] || urgent
	r.dmu.Unlock()
	ch := r.wake
	if urgent {
		ch = r.urgent
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (r *reporter) loop() {
	defer close(r.exit)
	pause := time.NewTimer(reportInterval)
	pause.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-r.wake:
		case <-r.urgent:
		}
		for {
			r.dmu.Lock()
			var due []string
			for name, urgent := range r.dirty {
				if urgent || time.Since(r.last[name]) >= statsInterval {
					due = append(due, name)
					delete(r.dirty, name)
				}
			}
			pending := len(r.dirty)
			r.dmu.Unlock()
			for _, name := range due {
				r.write(name)
				r.dmu.Lock()
				r.last[name] = time.Now()
				r.dmu.Unlock()
			}
			if pending == 0 {
				break
			}
			pause.Reset(reportInterval)
			select {
			case <-r.done:
				return
			case <-pause.C:
			case <-r.urgent:
				pause.Stop()
			}
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
	f.st.dirty.Store(false) // changes from now on kick again
	st, warm, ok := m.Stats(name)
	if !ok {
		return
	}
	busy, queued := m.load(name)
	s := clientsdk.InstanceStatus{
		App: name, Instance: -1, Node: m.opts.nodeID, State: clientsdk.StateStopped,
		WarmWorkers: warm, BusyWorkers: busy, QueuedRequests: queued, Lambda: &st, SpecRevision: f.spec.Revision,
	}
	if busy > 0 || queued > 0 {
		// Looked at again within statsInterval while it works, so that the
		// busy and queued figures come back to 0 once it is done.
		defer r.kick(name, false)
	}
	if warm > 0 {
		s.State = clientsdk.StateRunning
	}
	same, _ := json.Marshal(s)
	if w, ok := r.written[name]; ok && w.body == string(same) && time.Since(w.at) < sameRefresh {
		return // nothing changed: a long invocation is not a write a second
	}
	s.UpdatedAt = time.Now().UTC()
	b, _ := json.Marshal(s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.opts.status.Put(ctx, clientsdk.LambdaStatusKey(name, m.opts.nodeID), b); err != nil {
		m.logger.Warn("cannot write lambda status", "app", name, "err", err)
		return
	}
	r.written[name] = writtenEntry{body: string(same), at: time.Now()}
}

// writtenEntry is a status entry as written (without its time), and when.
type writtenEntry struct {
	body string
	at   time.Time
}

// load returns the workers of lambda name (every revision still here)
// running an invocation, and the requests waiting for a worker.
func (m *Manager) load(name string) (busy, queued int) {
	m.mu.Lock()
	fs := []*function{m.funcs[name]}
	for r := range m.retiring {
		if r.name == name {
			fs = append(fs, r)
		}
	}
	m.mu.Unlock()
	for _, f := range fs {
		if f != nil {
			b, q := f.load()
			busy, queued = busy+b, queued+q
		}
	}
	return busy, queued
}

// load returns f's workers running an invocation (stdio: its processes)
// and its queued requests.
func (f *function) load() (busy, queued int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	busy = f.running
	for w := range f.workers {
		if w.current != nil {
			busy++
		}
	}
	return busy, len(f.queue)
}

// remove deletes name's status entry (after Undeploy).
func (r *reporter) remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.written, name)
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
