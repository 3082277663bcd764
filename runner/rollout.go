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
		st, ok := statuses[j]
		switch {
		case !ok:
		case st.FailedRevision == spec.Revision:
			return false, fmt.Sprintf("the rollout stopped: it failed on instance %d (%s)", j, st.LastError)
		case st.SpecRevision == spec.Revision && (st.State == clientsdk.StateErrored || st.QuickExits > 0):
			return false, fmt.Sprintf("the rollout stopped: the new revision crashes on instance %d", j)
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
// now: always when the new one does not change how it runs; otherwise
// never while the rollout to it has failed, and, for an instance that
// serves, when rolloutGate says so (the app's statuses are read once per
// reconcile round into seen).
func (r *Runner) gateOpen(ctx context.Context, a action, seen map[string]map[int]clientsdk.InstanceStatus) bool {
	r.mu.Lock()
	in, ok := r.instances[a.key]
	held := ok && in.sentRev != a.spec.Revision && material(in.sentSpec, *a.spec)
	r.mu.Unlock()
	if !held {
		return true
	}
	statuses := r.statusesOnce(ctx, a.spec.Name, seen)
	if statuses == nil {
		return false // unread: wait for the next round
	}
	if !in.routed.Load() {
		// Not serving: nothing to keep up, so no order to keep; only a
		// rollout that failed keeps the new revision away.
		return failedRollout(*a.spec, statuses) == 0
	}
	open, why := rolloutGate(*a.spec, a.index, statuses)
	r.mu.Lock()
	changed := in.gateWhy != why
	in.gateWhy = why
	r.mu.Unlock()
	if !open && changed {
		r.logger.Info("rollout waits", "key", a.key, "why", why)
	}
	return open
}

// statusesOnce returns app's statuses, read at most once per reconcile
// round (seen holds what was read).
func (r *Runner) statusesOnce(ctx context.Context, app string, seen map[string]map[int]clientsdk.InstanceStatus) map[int]clientsdk.InstanceStatus {
	statuses, ok := seen[app]
	if !ok {
		statuses = r.appStatuses(ctx, app)
		seen[app] = statuses
	}
	return statuses
}

// failedRollout returns the revision that instances of spec run while the
// rollout to spec's revision has failed (0: it has not failed).
func failedRollout(spec clientsdk.AppSpec, statuses map[int]clientsdk.InstanceStatus) uint64 {
	for _, st := range statuses {
		if st.FailedRevision == spec.Revision && st.SpecRevision != 0 && st.SpecRevision != spec.Revision {
			return st.SpecRevision
		}
	}
	return 0
}

// rolloutFailure is a failed rollout an instance started on another node
// carries over: its status keeps saying so, so that the rollout stays
// stopped (the gate reads it from the statuses).
type rolloutFailure struct {
	rev uint64
	why string
}

// specToRun returns the spec a taken-over instance a starts with: the
// desired one, unless the rollout to it failed while the instance ran an
// older revision; then the revision the app's instances still run (from
// the apps bucket's history), so that a node's death does not start the
// version that failed, and the failure to carry over.
func (r *Runner) specToRun(ctx context.Context, a action, seen map[string]map[int]clientsdk.InstanceStatus) (clientsdk.AppSpec, rolloutFailure) {
	if a.claim != claimTakeover {
		return *a.spec, rolloutFailure{}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	e, err := r.status.Get(ctx, a.key)
	var own clientsdk.InstanceStatus
	if err != nil || json.Unmarshal(e.Value(), &own) != nil || own.SpecRevision == 0 || own.SpecRevision == a.spec.Revision {
		return *a.spec, rolloutFailure{}
	}
	statuses := r.statusesOnce(ctx, a.spec.Name, seen)
	good := failedRollout(*a.spec, statuses)
	if good == 0 {
		return *a.spec, rolloutFailure{}
	}
	old, err := r.apps.GetRevision(ctx, a.spec.Name, good)
	var s clientsdk.AppSpec
	if err != nil || json.Unmarshal(old.Value(), &s) != nil {
		return *a.spec, rolloutFailure{}
	}
	r.logger.Info("the rollout of this app failed: starting the revision its instances run", "key", a.key, "revision", good, "failed", a.spec.Revision)
	why := own.LastError
	if own.FailedRevision != a.spec.Revision {
		why = fmt.Sprintf("the rollout to version %d failed on another instance; this one still runs the version before", a.spec.Version)
	}
	return r.runnable(s, good), rolloutFailure{rev: a.spec.Revision, why: why}
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
