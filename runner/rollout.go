package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// rolloutGate decides whether instance index, which serves an older
// revision, may begin its rollout to spec (a new revision, or a restart):
// instances go in index order, at most spec.Parallel at a time, each waiting
// until the instances before it that still serve or start have the new
// revision and are ready; a rollout that failed on any instance stops for
// all. statuses are the app's instances' statuses by index. It returns why
// the instance waits when it must.
func rolloutGate(spec clientsdk.AppSpec, index int, statuses map[int]clientsdk.InstanceStatus) (bool, string) {
	for j := 0; j < spec.Instances; j++ {
		if st, ok := statuses[j]; ok && st.FailedRevision == spec.Revision {
			return false, fmt.Sprintf("the rollout stopped: it failed on instance %d (%s)", j, st.LastError)
		}
	}
	busy := 0
	for j := 0; j < index && j < spec.Instances; j++ {
		if st, ok := statuses[j]; ok && inRollout(st, spec.Revision) {
			busy++
		}
	}
	if busy >= max(spec.Parallel, 1) {
		return false, fmt.Sprintf("waiting for %d instance(s) before it to run revision %d and be ready", busy, spec.Revision)
	}
	return true, ""
}

// inRollout reports whether an instance still has to finish the rollout to
// rev: it serves or starts, and is not yet ready at rev. Instances that do
// not run (backoff, errored, stopped) hold nobody up: replacing them costs
// no capacity.
func inRollout(st clientsdk.InstanceStatus, rev uint64) bool {
	switch st.State {
	case clientsdk.StateRunning, clientsdk.StateStarting:
		return st.SpecRevision != rev || !st.Ready
	}
	return false
}

// gateOpen reports whether the local instance a may be handed its new spec
// now: always, unless it serves a spec that the new one changes materially;
// then rolloutGate decides from the app's statuses (read once per
// reconcile round into seen).
func (r *Runner) gateOpen(ctx context.Context, a action, seen map[string]map[int]clientsdk.InstanceStatus) bool {
	r.mu.Lock()
	in, ok := r.instances[a.key]
	held := ok && in.sentRev != a.spec.Revision && in.routed.Load() && material(in.sentSpec, a.spec)
	r.mu.Unlock()
	if !held {
		return true
	}
	statuses, ok := seen[a.spec.Name]
	if !ok {
		statuses = r.appStatuses(ctx, a.spec.Name)
		seen[a.spec.Name] = statuses
	}
	if statuses == nil {
		return false // unread: wait for the next round
	}
	open, why := rolloutGate(a.spec, a.index, statuses)
	r.mu.Lock()
	changed := in.gateWhy != why
	in.gateWhy = why
	r.mu.Unlock()
	if !open && changed {
		r.logger.Info("rollout waits", "key", a.key, "why", why)
	}
	return open
}

// appStatuses reads the statuses of app's instances (nil when they cannot
// be read).
func (r *Runner) appStatuses(ctx context.Context, app string) map[int]clientsdk.InstanceStatus {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	w, err := r.status.Watch(ctx, app+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil
	}
	defer func() { _ = w.Stop() }()
	out := map[int]clientsdk.InstanceStatus{}
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return out
			}
			var st clientsdk.InstanceStatus
			_, idx, ok := clientsdk.ParseInstanceKey(e.Key())
			if ok && json.Unmarshal(e.Value(), &st) == nil {
				out[idx] = st
			}
		case <-ctx.Done():
			return nil
		}
	}
}
