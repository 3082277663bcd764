package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// push validates an AppSpec (clientsdk.ParsePushRequest: size, decoding,
// bounds), checks that its artifact is in the object store with the size and
// bytes it claims, and writes it as the app's desired state.
func (a *api) push(ctx context.Context, req micro.Request) (any, error) {
	spec, err := clientsdk.ParsePushRequest(req.Data())
	if err != nil {
		return nil, err
	}
	if err := checkSchedules(spec, time.Now()); err != nil {
		return nil, err
	}
	spec.PushedAt, spec.RollbackOf = time.Now().UTC(), 0
	if _, err := a.storeNewVersion(ctx, &spec, nil); err != nil {
		return nil, err
	}
	a.publishEvent(ctx, spec.Name, clientsdk.EventPushed, fmt.Sprintf("revision %d (%s)", spec.Version, spec.Kind))
	a.logger.Info("app pushed", "app", spec.Name, "kind", spec.Kind, "runtime", spec.Runtime, "version", spec.Version, "revision", spec.Revision)
	return spec, nil
}

// storeNewVersion stores spec as its app's next version, for push and
// rollback: it checks its routes and artifact, writes it with
// compare-and-set (storeVersion, which calls onCurrent with the spec it
// replaces), records it among the app's revisions, and deletes the
// artifacts that no kept revision uses any more. It sets spec's Version,
// TokenNonce and Revision and returns the bucket revision.
func (a *api) storeNewVersion(ctx context.Context, spec *clientsdk.AppSpec, onCurrent func(cur, next *clientsdk.AppSpec) error) (stored uint64, err error) {
	r := a.b.auth.apps.Load() // the router, once it runs
	if r != nil && (spec.Kind == clientsdk.KindLambda || len(spec.HTTP) > 0) {
		// Apps with routes are stored one at a time, each checked against
		// the cache once it holds the one before: two pushes at once
		// cannot both take a route (on this server; see docs/http.md).
		a.routesMu.Lock()
		defer a.routesMu.Unlock()
		if err := r.routeConflict(*spec); err != nil {
			return 0, err
		}
		defer func() {
			if stored > 0 {
				r.waitApplied(ctx, spec.Name, stored, 2*time.Second)
			}
		}()
	}
	if spec.Artifact != nil {
		if err := a.checkArtifact(ctx, spec.Artifact); err != nil {
			return 0, err
		}
	}
	// The artifacts of the app's revisions in the apps bucket (the spec
	// this version replaces, and those of specs stored before the record
	// of revisions): nothing may need them after this version.
	candidates := a.historyArtifacts(ctx, spec.Name)
	if ctx.Err() != nil {
		// The caller no longer waits (or 30 s have passed): apply nothing
		// it would not hear of. Its retry pushes again.
		return 0, clientsdk.Errorf(503, "Unavailable", "the new version of %s took longer than its caller waits; it was not applied", spec.Name)
	}
	rev, prev, err := a.storeVersion(ctx, spec, onCurrent)
	if err != nil {
		return 0, err
	}
	spec.Revision, stored = rev, rev
	// The versions that fall out of the app's history take their artifacts
	// with them, unless another kept revision uses them.
	dropped, err := a.recordVersion(ctx, *spec, prev)
	if err != nil {
		a.logger.Warn("could not record the app's new version among its revisions", "app", spec.Name, "version", spec.Version, "err", err)
	}
	maps.Copy(candidates, dropped)
	if err := a.dropUnusedArtifacts(ctx, candidates, ""); err != nil {
		a.logger.Warn("could not delete artifacts no revision uses", "app", spec.Name, "err", err)
	}
	// Another app's removal may have collected these shared bytes between the
	// check above and the Put: then say so, and the client uploads them again.
	if spec.Artifact != nil {
		if _, err := a.objects.GetInfo(ctx, spec.Artifact.Object); errors.Is(err, jetstream.ErrObjectNotFound) {
			return 0, clientsdk.Errorf(400, clientsdk.TypeArtifactMissing, "artifact %s was deleted while storing version %d of %s; push the file again", spec.Artifact.Object, spec.Version, spec.Name)
		}
	}
	return rev, nil
}

// lastVersion returns the highest version in app's history (0 for none).
func (a *api) lastVersion(ctx context.Context, name string) uint64 {
	hist, err := a.apps.History(ctx, name)
	if err != nil {
		return 0
	}
	var v uint64
	for _, h := range hist {
		var s clientsdk.AppSpec
		if h.Operation() == jetstream.KeyValuePut && json.Unmarshal(h.Value(), &s) == nil {
			v = max(v, s.Version)
		}
	}
	return v
}

// storeVersion writes spec as app's next version (its Version one more than
// the stored one's, 1 for a new app) with compare-and-set, so that two
// pushes at once get two numbers. onCurrent, when not nil, sees the spec
// about to be replaced and spec first, and may change spec or refuse; with
// it, the app must exist (a rollback). It returns the bucket revision and
// the spec it replaced (nil for a new app).
func (a *api) storeVersion(ctx context.Context, spec *clientsdk.AppSpec, onCurrent func(cur, next *clientsdk.AppSpec) error) (uint64, *clientsdk.AppSpec, error) {
	for range 10 {
		cur, rev, err := a.getSpec(ctx, spec.Name)
		var nf *clientsdk.Error
		switch {
		case err == nil:
			spec.Version, spec.TokenNonce = cur.Version+1, cur.TokenNonce
			if onCurrent != nil {
				if err := onCurrent(cur, spec); err != nil {
					return 0, nil, err
				}
			}
			if err := keepService(*cur, spec); err != nil {
				return 0, nil, err
			}
		case errors.As(err, &nf) && nf.Code == 404 && onCurrent != nil:
			return 0, nil, err // a rollback needs the app it rolls back
		case errors.As(err, &nf) && nf.Code == 404:
			// A new app, or one removed: numbering goes on after its history.
			spec.Version, rev, cur = a.lastVersion(ctx, spec.Name)+1, 0, nil
			spec.TokenNonce = clientsdk.NewTokenNonce()
		default:
			return 0, nil, err
		}
		spec.Revision = 0
		b, _ := json.Marshal(spec)
		var nrev uint64
		if rev == 0 {
			nrev, err = a.apps.Create(ctx, spec.Name, b)
		} else {
			nrev, err = a.apps.Update(ctx, spec.Name, b, rev)
		}
		if err == nil {
			return nrev, cur, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, nil, err
		}
	}
	return 0, nil, clientsdk.Errorf(409, "Conflict", "app %s is being pushed by someone else at the same time; try again", spec.Name)
}

// keepService applies the ownership of an app by a deploy file's service
// to a new version next of the app whose current spec is cur: a version
// without a service (a push by hand) keeps cur's; a deploy may adopt an app
// pushed by hand; an app of one service is never taken over by another's
// deploy (409 ServiceTaken), even when two deploys create it at once.
func keepService(cur clientsdk.AppSpec, next *clientsdk.AppSpec) error {
	switch {
	case next.Service == "":
		next.Service = cur.Service
	case cur.Service != "" && cur.Service != next.Service:
		return clientsdk.Errorf(409, "ServiceTaken", "app %s belongs to service %s (deployed from another file), not %s: rename it in this file, or remove it first (`dartup remove %s`)",
			cur.Name, cur.Service, next.Service, cur.Name)
	}
	return nil
}

// checkArtifact checks that ref's object is in the object store with the
// size and digest ref claims, reading its bytes through unless this version
// of the object was verified before. Errors: *clientsdk.Error 400
// TypeArtifactMissing, TypeArtifactMismatch or TypeArtifactCorrupt (the
// client uploads the file again), 503 while a long verification goes on, or
// the object store's error.
func (a *api) checkArtifact(ctx context.Context, ref *clientsdk.ArtifactRef) error {
	oi, err := a.objects.GetInfo(ctx, ref.Object)
	// In a cluster the read may reach a replica that has not applied the
	// upload yet: look again for a moment before calling it missing.
	for wait := 20 * time.Millisecond; errors.Is(err, jetstream.ErrObjectNotFound) && wait < 2*time.Second; wait *= 2 {
		time.Sleep(wait)
		oi, err = a.objects.GetInfo(ctx, ref.Object)
	}
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return clientsdk.Errorf(400, clientsdk.TypeArtifactMissing, "artifact %s is not in the object store; upload it before calling push (clientsdk.Push does both)", ref.Object)
	}
	if err != nil {
		return err
	}
	if oi.Size != uint64(ref.Size) {
		return clientsdk.Errorf(400, clientsdk.TypeArtifactMismatch, "artifact %s has %d bytes in the store, the spec says %d", ref.Object, oi.Size, ref.Size)
	}
	if got := oi.Headers.Get(HeaderArtifactSHA256); got != "" && got != ref.SHA256 {
		return clientsdk.Errorf(400, clientsdk.TypeArtifactMismatch, "artifact %s digest mismatch", ref.Object)
	}
	return a.verifier.check(ctx, oi, ref.SHA256)
}

// HeaderArtifactSHA256 is the object-store header holding an artifact's hex digest.
const HeaderArtifactSHA256 = clientsdk.HeaderArtifactSHA256

// updateSpec applies change to an app's spec with compare-and-set, retrying
// when another writer got there first.
func (a *api) updateSpec(ctx context.Context, name string, change func(*clientsdk.AppSpec)) (*clientsdk.AppSpec, error) {
	for attempt := 0; attempt < 10; attempt++ {
		spec, rev, err := a.getSpec(ctx, name)
		if err != nil {
			return nil, err
		}
		change(spec)
		spec.Revision = 0
		b, _ := json.Marshal(spec)
		nrev, err := a.apps.Update(ctx, name, b, rev)
		if err == nil {
			spec.Revision = nrev
			return spec, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return nil, err
		}
	}
	return nil, clientsdk.Errorf(409, "Conflict", "app %s is being changed by someone else; try again", name)
}

func (a *api) kill(ctx context.Context, req micro.Request) (any, error) {
	name, err := decodeName(req)
	if err != nil {
		return nil, err
	}
	spec, err := a.updateSpec(ctx, name, func(s *clientsdk.AppSpec) { s.Stopped = true })
	if err != nil {
		return nil, err
	}
	a.publishEvent(ctx, name, clientsdk.EventKilled, "stopped by request")
	return a.summarize(ctx, *spec)
}

func (a *api) start(ctx context.Context, req micro.Request) (any, error) {
	name, err := decodeName(req)
	if err != nil {
		return nil, err
	}
	// Every start writes the spec again (a new bucket revision, the same
	// version), so runners also start errored instances afresh.
	spec, err := a.updateSpec(ctx, name, func(s *clientsdk.AppSpec) { s.Stopped = false })
	if err != nil {
		return nil, err
	}
	a.publishEvent(ctx, name, clientsdk.EventStartReq, "started by request")
	return a.summarize(ctx, *spec)
}

// restart rewrites the spec with a new RestartedAt (the same version):
// runners replace every instance in a rollout, as for a new version.
func (a *api) restart(ctx context.Context, req micro.Request) (any, error) {
	var r clientsdk.RestartRequest
	if err := clientsdk.DecodeRequest(req.Data(), &r); err != nil {
		return nil, err
	}
	if err := clientsdk.ValidateName(r.Name); err != nil {
		return nil, err
	}
	if r.Parallel < 0 || r.Parallel > clientsdk.MaxInstances {
		return nil, clientsdk.Errorf(400, clientsdk.TypeInvalidSpec, "parallel (--parallel) is %d; allowed 1 to %d", r.Parallel, clientsdk.MaxInstances)
	}
	cur, _, err := a.getSpec(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	if cur.Stopped {
		return nil, clientsdk.Errorf(409, "Stopped", "%s is stopped; start it with `dartup start %s`", r.Name, r.Name)
	}
	spec, err := a.updateSpec(ctx, r.Name, func(s *clientsdk.AppSpec) {
		s.RestartedAt = time.Now().UTC()
		if r.Parallel > 0 {
			s.Parallel = r.Parallel
		}
	})
	if err != nil {
		return nil, err
	}
	a.publishEvent(ctx, r.Name, clientsdk.EventRestartReq, "rolling restart requested")
	return spec, nil
}

// remove deletes the spec (runners stop the instances when they see it go),
// then the app's artifacts and the status and placement keys.
func (a *api) remove(ctx context.Context, req micro.Request) (any, error) {
	name, err := decodeName(req)
	if err != nil {
		return nil, err
	}
	if _, _, err := a.getSpec(ctx, name); err != nil {
		return nil, err
	}
	// The artifacts any revision of the app used are candidates for deletion.
	used := a.historyArtifacts(ctx, name)
	revs, err := a.readRevisions(ctx, name)
	errs := []error{err} // without them, the collection of orphans gets their artifacts
	for _, r := range revs {
		if r.Artifact != nil {
			used[r.Artifact.Object] = true
		}
	}
	if err := a.apps.Purge(ctx, name); clientsdk.IsStoreFull(err) {
		// A full store has no room for the purge's marker: free the app's
		// artifacts first, then try again.
		a.logger.Warn("remove: the store is full; deleting the app's artifacts first", "app", name)
		errs = append(errs, a.dropUnusedArtifacts(ctx, maps.Clone(used), name))
		err = a.apps.Purge(ctx, name)
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	errs = append(errs, a.purgeRevisions(ctx, name, nil))
	errs = append(errs, a.dropUnusedArtifacts(ctx, used, ""))
	if keys, err := a.place.ListKeysFiltered(ctx, name+".>"); err == nil {
		for k := range keys.Keys() {
			errs = append(errs, a.place.Purge(ctx, k))
		}
	}
	errs = append(errs, a.purgeDeadStatuses(ctx, name))
	if a.b.async != nil {
		errs = append(errs, a.b.async.forget(ctx, name)) // its async events and dead letters
	}
	a.publishEvent(ctx, name, clientsdk.EventRemoved, "removed by request")
	if err := errors.Join(errs...); err != nil {
		a.logger.Warn("remove left some state behind", "app", name, "err", err)
	}
	return map[string]string{"removed": name}, nil
}

// purgeDeadStatuses deletes the status entries of app whose node is not
// live: nobody else will. A live node deletes its own once the instance's
// process is gone (so that `remove` can wait for that).
func (a *api) purgeDeadStatuses(ctx context.Context, app string) error {
	_, live, err := a.nodesNow(ctx)
	if err != nil {
		return err
	}
	entries, err := readEntries(ctx, a.status)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		var st clientsdk.InstanceStatus
		if json.Unmarshal(e.Value(), &st) != nil || st.App != app {
			continue
		}
		if _, ok := live[st.Node]; !ok {
			errs = append(errs, a.status.Purge(ctx, e.Key()))
		}
	}
	return errors.Join(errs...)
}

// historyArtifacts returns the artifact objects the revisions of app in the
// apps bucket's history refer to.
func (a *api) historyArtifacts(ctx context.Context, app string) map[string]bool {
	out := map[string]bool{}
	if hist, err := a.apps.History(ctx, app); err == nil {
		for _, h := range hist {
			var s clientsdk.AppSpec
			if json.Unmarshal(h.Value(), &s) == nil && s.Artifact != nil {
				out[s.Artifact.Object] = true
			}
		}
	}
	return out
}

// dropUnusedArtifacts deletes those of the candidate objects that no revision
// of any app (but except) still in the apps bucket's history refers to
// (artifacts are shared by content digest, and kept while a revision could
// be rolled back to).
func (a *api) dropUnusedArtifacts(ctx context.Context, candidates map[string]bool, except string) error {
	if len(candidates) == 0 {
		return nil
	}
	used, err := a.usedArtifacts(ctx, except)
	if err != nil {
		return err
	}
	for o := range used {
		delete(candidates, o)
	}
	var errs []error
	for o := range candidates {
		a.verifier.forget(o)
		a.purgeChunks(ctx, o)
		if err := a.objects.Delete(ctx, o); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// purgeChunks purges an object's chunks before the object store's Delete,
// which first writes a deletion marker: on a full store that write fails
// and nothing would be freed; a purge needs no room.
func (a *api) purgeChunks(ctx context.Context, object string) {
	info, err := a.objects.GetInfo(ctx, object)
	if err != nil || info.NUID == "" {
		return
	}
	stream, err := a.b.js.Stream(ctx, "OBJ_"+clientsdk.ArtifactsBucket)
	if err != nil {
		return
	}
	_ = stream.Purge(ctx, jetstream.WithPurgeSubject("$O."+clientsdk.ArtifactsBucket+".C."+info.NUID))
}
