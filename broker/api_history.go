package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// history lists the versions an app keeps, newest first, with what changed
// from one to the next.
func (a *api) history(ctx context.Context, req micro.Request) (any, error) {
	name, err := decodeName(req)
	if err != nil {
		return nil, err
	}
	cur, _, err := a.getSpec(ctx, name)
	if err != nil {
		return nil, err
	}
	revs, err := a.readRevisions(ctx, name)
	if err != nil {
		return nil, err
	}
	kept := keptSpecs(revs, *cur)
	resp := clientsdk.HistoryResponse{Name: name, Current: cur.Version, Keep: cur.WithDefaults().History,
		Versions: historyOf(kept, cur.Version)}
	resp.RollbackTo, _ = rollbackTarget(name, keptVersionNumbers(kept), sameAsCurrent(kept, *cur), cur.Version, 0)
	return resp, nil
}

// rollback stores a kept version's spec as the app's next version (with
// RollbackOf set, pushed now by the caller, and the current stopped state
// and number of versions kept),
// through the same compare-and-set as a push: runners roll it out as any
// new version.
func (a *api) rollback(ctx context.Context, req micro.Request) (any, error) {
	var r clientsdk.RollbackRequest
	if err := clientsdk.DecodeRequest(req.Data(), &r); err != nil {
		return nil, err
	}
	if err := clientsdk.ValidateName(r.Name); err != nil {
		return nil, err
	}
	if len(r.By) > clientsdk.MaxPushedByLength {
		return nil, clientsdk.Errorf(400, "BadRequest", "by is %d bytes long; allowed at most %d", len(r.By), clientsdk.MaxPushedByLength)
	}
	cur, _, err := a.getSpec(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	target, err := a.rollbackSpec(ctx, *cur, r.To)
	if err != nil {
		return nil, err
	}
	spec := target.WithDefaults()
	spec.RollbackOf, spec.PushedAt, spec.PushedBy = target.Version, time.Now().UTC(), r.By
	spec.Revision, spec.RestartedAt = 0, time.Time{}
	onCurrent := func(now, next *clientsdk.AppSpec) error {
		if now.Version != cur.Version {
			return clientsdk.Errorf(409, "Conflict", "%s changed meanwhile: it is at version %d now, not %d; see `dartup history %s` and try again", r.Name, now.Version, cur.Version, r.Name)
		}
		// A killed app stays killed, and the versions kept stay as many:
		// going back does not drop the history it could come back through.
		next.Stopped, next.History, next.Service = now.Stopped, now.WithDefaults().History, now.Service
		return nil
	}
	if _, err := a.storeNewVersion(ctx, &spec, onCurrent); err != nil {
		return nil, err
	}
	a.publishEvent(ctx, spec.Name, clientsdk.EventPushed, fmt.Sprintf("revision %d (%s): rollback of version %d", spec.Version, spec.Kind, spec.RollbackOf))
	a.logger.Info("app rolled back", "app", spec.Name, "version", spec.Version, "rollback_of", spec.RollbackOf, "revision", spec.Revision)
	return spec, nil
}

// keptVersionNumbers lists the versions of kept specs.
func keptVersionNumbers(kept []clientsdk.AppSpec) []uint64 {
	out := make([]uint64, len(kept))
	for i, k := range kept {
		out[i] = k.Version
	}
	return out
}

// sameAsCurrent returns the kept versions whose spec is cur's as a rollback
// would store it (the service and the number of versions kept are cur's).
func sameAsCurrent(kept []clientsdk.AppSpec, cur clientsdk.AppSpec) map[uint64]bool {
	out := map[uint64]bool{}
	for _, k := range kept {
		k.History, k.Service = cur.History, cur.Service
		if len(clientsdk.DiffSpecs(cur, k)) == 0 {
			out[k.Version] = true
		}
	}
	return out
}

// rollbackSpec returns the kept spec that a rollback of the app whose
// current spec is cur goes to (see rollbackTarget), after checking that it
// differs from cur, is still valid and that its artifact is still stored.
func (a *api) rollbackSpec(ctx context.Context, cur clientsdk.AppSpec, to uint64) (clientsdk.AppSpec, error) {
	revs, err := a.readRevisions(ctx, cur.Name)
	if err != nil {
		return clientsdk.AppSpec{}, err
	}
	kept := keptSpecs(revs, cur)
	if to, err = rollbackTarget(cur.Name, keptVersionNumbers(kept), sameAsCurrent(kept, cur), cur.Version, to); err != nil {
		return clientsdk.AppSpec{}, err
	}
	var target clientsdk.AppSpec
	for _, k := range kept {
		if k.Version == to {
			target = k
		}
	}
	if sameAsCurrent([]clientsdk.AppSpec{target}, cur)[to] {
		return clientsdk.AppSpec{}, clientsdk.Errorf(409, "AlreadyRunning", "version %d of %s is the same as its current version %d: it already runs that", to, cur.Name, cur.Version)
	}
	defaulted := target.WithDefaults()
	if err := defaulted.Validate(); err != nil {
		msg := err.Error()
		if e, ok := clientsdk.AsError(err); ok {
			msg = e.Message
		}
		return clientsdk.AppSpec{}, clientsdk.Errorf(400, clientsdk.TypeInvalidSpec, "version %d of %s is not valid any more (%s); push it again instead", to, cur.Name, msg)
	}
	if target.Artifact != nil {
		_, err := a.objects.GetInfo(ctx, target.Artifact.Object)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return clientsdk.AppSpec{}, clientsdk.Errorf(410, clientsdk.TypeArtifactMissing, "the artifact of version %d of %s (%s) is no longer stored; push the file again", to, cur.Name, target.Artifact.Object)
		}
		if err != nil {
			return clientsdk.AppSpec{}, err
		}
	}
	return target, nil
}
