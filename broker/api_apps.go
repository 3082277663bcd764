package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	if spec.Artifact != nil {
		if err := a.checkArtifact(ctx, spec.Artifact); err != nil {
			return nil, err
		}
	}
	spec.PushedAt = time.Now().UTC()
	spec.Revision = 0
	// The artifacts of the app's current history: one may fall out of the
	// history window with this push, and then nothing needs it any more.
	before := a.historyArtifacts(ctx, spec.Name)
	b, _ := json.Marshal(spec)
	rev, err := a.apps.Put(ctx, spec.Name, b)
	if err != nil {
		return nil, err
	}
	if err := a.dropUnusedArtifacts(ctx, before); err != nil {
		a.logger.Warn("could not delete artifacts no revision uses", "app", spec.Name, "err", err)
	}
	// Another app's removal may have collected these shared bytes between the
	// check above and the Put: then say so, and the client uploads them again.
	if spec.Artifact != nil {
		if _, err := a.objects.GetInfo(ctx, spec.Artifact.Object); errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, clientsdk.Errorf(400, clientsdk.TypeArtifactMissing, "artifact %s was deleted while pushing; push again", spec.Artifact.Object)
		}
	}
	spec.Revision = rev
	a.publishEvent(ctx, spec.Name, clientsdk.EventPushed, fmt.Sprintf("revision %d (%s)", rev, spec.Kind))
	a.logger.Info("app pushed", "app", spec.Name, "kind", spec.Kind, "runtime", spec.Runtime, "revision", rev)
	return spec, nil
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
	st, _ := a.statusesOf(ctx, name)
	return Summarize(*spec, st), nil
}

func (a *api) start(ctx context.Context, req micro.Request) (any, error) {
	name, err := decodeName(req)
	if err != nil {
		return nil, err
	}
	// Every start writes a new revision, so runners also reset errored instances.
	spec, err := a.updateSpec(ctx, name, func(s *clientsdk.AppSpec) { s.Stopped = false; s.PushedAt = time.Now().UTC() })
	if err != nil {
		return nil, err
	}
	a.publishEvent(ctx, name, clientsdk.EventStartReq, "started by request")
	st, _ := a.statusesOf(ctx, name)
	return Summarize(*spec, st), nil
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
	if err := a.apps.Purge(ctx, name); err != nil {
		return nil, err
	}
	var errs []error
	errs = append(errs, a.dropUnusedArtifacts(ctx, used))
	for _, kv := range []jetstream.KeyValue{a.status, a.place} {
		keys, err := kv.ListKeysFiltered(ctx, name+".>")
		if err != nil {
			continue
		}
		for k := range keys.Keys() {
			errs = append(errs, kv.Purge(ctx, k))
		}
	}
	a.publishEvent(ctx, name, clientsdk.EventRemoved, "removed by request")
	if err := errors.Join(errs...); err != nil {
		a.logger.Warn("remove left some state behind", "app", name, "err", err)
	}
	return map[string]string{"removed": name}, nil
}

// Summarize computes dart_up's alive|dead|error summary of an app from its
// spec and its instances' statuses.
func Summarize(spec clientsdk.AppSpec, st []clientsdk.InstanceStatus) clientsdk.AppSummary {
	slices.SortFunc(st, func(x, y clientsdk.InstanceStatus) int { return x.Instance - y.Instance })
	sum := clientsdk.AppSummary{Name: spec.Name, Kind: spec.Kind, Instances: st}
	if spec.Kind == clientsdk.KindLambda {
		var errs []string
		for _, s := range st {
			sum.WarmWorkers += s.WarmWorkers
			if s.State == clientsdk.StateErrored && s.SpecRevision == spec.Revision {
				errs = append(errs, s.Node+": "+s.LastError)
			}
		}
		switch {
		case spec.Stopped:
			sum.State, sum.Message = clientsdk.AppDead, "stopped"
		case len(errs) > 0:
			sum.State, sum.Message = clientsdk.AppError, strings.Join(errs, "; ")
		case sum.WarmWorkers > 0:
			sum.State, sum.Message = clientsdk.AppAlive, fmt.Sprintf("%d warm", sum.WarmWorkers)
		default:
			sum.State = clientsdk.AppDead
		}
		sum.Running = sum.WarmWorkers
		return sum
	}
	if !spec.Stopped {
		sum.Desired = spec.Instances
	}
	var errored []string
	for _, s := range st {
		if s.Instance >= spec.Instances {
			continue
		}
		switch s.State {
		case clientsdk.StateRunning:
			sum.Running++
		case clientsdk.StateErrored:
			errored = append(errored, fmt.Sprintf("#%d: %s", s.Instance, s.LastError))
		}
	}
	switch {
	case spec.Stopped:
		sum.State, sum.Message = clientsdk.AppDead, "stopped"
	case len(errored) > 0:
		sum.State, sum.Message = clientsdk.AppError, strings.Join(errored, "; ")
	case sum.Running > 0:
		sum.State = clientsdk.AppAlive
		if spec.Instances > 1 || sum.Running < spec.Instances {
			sum.Message = fmt.Sprintf("%d/%d running", sum.Running, spec.Instances)
		}
	default:
		sum.State, sum.Message = clientsdk.AppDead, "starting"
		for _, s := range st {
			if s.State == clientsdk.StateExited && s.Instance < spec.Instances && s.SpecRevision == spec.Revision {
				sum.Message = "exited"
			}
		}
	}
	return sum
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
// of any app still in the apps bucket's history refers to (artifacts are
// shared by content digest, and kept while a revision could be rolled back to).
func (a *api) dropUnusedArtifacts(ctx context.Context, candidates map[string]bool) error {
	if len(candidates) == 0 {
		return nil
	}
	w, err := a.apps.WatchAll(ctx, jetstream.IncludeHistory(), jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer w.Stop()
	for e := range w.Updates() {
		if e == nil {
			break
		}
		var s clientsdk.AppSpec
		if json.Unmarshal(e.Value(), &s) == nil && s.Artifact != nil {
			delete(candidates, s.Artifact.Object)
		}
	}
	var errs []error
	for o := range candidates {
		a.verifier.forget(o)
		if err := a.objects.Delete(ctx, o); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
