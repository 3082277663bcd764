package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// The record of revisions. RevisionsBucket holds, for each app, the spec of
// each of its last AppSpec.History versions under "APP.VERSION", written
// when a version is stored (push, rollback). It is what `history` lists and
// `rollback` goes back to, and, with the apps' current specs, what keeps
// artifacts from being collected (usedArtifacts). The apps bucket's own
// history cannot serve: kill, start and restart use it up too.

// readRevisions reads every stored revision of app, oldest first. An entry
// whose spec does not decode, or names another version than its key, is
// left out.
func (a *api) readRevisions(ctx context.Context, app string) ([]clientsdk.AppSpec, error) {
	w, err := a.revs.Watch(ctx, app+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var out []clientsdk.AppSpec
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				slices.SortFunc(out, func(x, y clientsdk.AppSpec) int { return compareVersions(x.Version, y.Version) })
				return out, nil
			}
			var s clientsdk.AppSpec
			_, v, ok := clientsdk.ParseRevisionKey(e.Key())
			if ok && json.Unmarshal(e.Value(), &s) == nil && s.Version == v && s.Name == app {
				out = append(out, s)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func compareVersions(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// recordVersion writes spec, as stored, as its version's revision — and
// prev, the spec it replaced, when the record lacks that one (stored before
// the record existed, or its write failed) — then drops the revisions
// revisionsToDrop names. It returns the artifacts of the revisions dropped.
func (a *api) recordVersion(ctx context.Context, spec clientsdk.AppSpec, prev *clientsdk.AppSpec) (map[string]bool, error) {
	revs, err := a.readRevisions(ctx, spec.Name)
	if err != nil {
		return nil, err
	}
	write := []clientsdk.AppSpec{spec}
	if prev != nil && prev.TokenNonce == spec.TokenNonce && !slices.ContainsFunc(revs, func(r clientsdk.AppSpec) bool { return r.Version == prev.Version }) {
		write = append(write, *prev)
	}
	for _, s := range write {
		s.Revision = 0
		b, _ := json.Marshal(s)
		if _, err := a.revs.Put(ctx, clientsdk.RevisionKey(s.Name, s.Version), b); err != nil {
			return nil, err
		}
		revs = append(revs, s)
	}
	metas := make([]revMeta, len(revs))
	for i, r := range revs {
		metas[i] = revMeta{Version: r.Version, Nonce: r.TokenNonce}
	}
	drop := revisionsToDrop(metas, spec.TokenNonce, spec.History)
	dropped := map[string]bool{}
	var errs []error
	for _, r := range revs {
		if !slices.Contains(drop, r.Version) {
			continue
		}
		if err := a.purgeRevisions(ctx, spec.Name, &r.Version); err != nil {
			errs = append(errs, err) // kept, and so are its artifacts
			continue
		}
		if r.Artifact != nil {
			dropped[r.Artifact.Object] = true
		}
	}
	return dropped, errors.Join(errs...)
}

// purgeRevisions removes app's revision of version v, or all of its
// revisions when v is nil. It purges the bucket's stream by subject, which
// leaves no deletion marker behind and needs no room in a full store.
func (a *api) purgeRevisions(ctx context.Context, app string, v *uint64) error {
	stream, err := a.b.js.Stream(ctx, "KV_"+clientsdk.RevisionsBucket)
	if err != nil {
		return err
	}
	key := app + ".>"
	if v != nil {
		key = clientsdk.RevisionKey(app, *v)
	}
	return stream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+clientsdk.RevisionsBucket+"."+key))
}

// revMeta is what the keep decision needs of one stored revision.
type revMeta struct {
	Version uint64
	// Nonce is the revision's token nonce: an app removed and pushed anew
	// under the same name has another one.
	Nonce string
}

// revisionsToDrop decides which of an app's stored revisions go, in
// ascending order: those of an earlier app of the same name (another token
// nonce than the current one's, nonce) and, of the rest, all but the keep
// newest. keep below 1 (a spec stored before AppSpec.History) counts as
// clientsdk.DefaultHistory.
func revisionsToDrop(revs []revMeta, nonce string, keep int) []uint64 {
	if keep < 1 {
		keep = clientsdk.DefaultHistory
	}
	var mine, drop []uint64
	for _, r := range revs {
		if r.Nonce != nonce {
			drop = append(drop, r.Version)
		} else if !slices.Contains(mine, r.Version) {
			mine = append(mine, r.Version)
		}
	}
	slices.Sort(mine)
	if len(mine) > keep {
		drop = append(drop, mine[:len(mine)-keep]...)
	}
	slices.Sort(drop)
	return slices.Compact(drop)
}

// keptSpecs returns the versions app cur keeps, newest first: the stored
// revisions of this app (its token nonce), and cur itself when the record
// lacks its version (a spec stored before the record existed).
func keptSpecs(revs []clientsdk.AppSpec, cur clientsdk.AppSpec) []clientsdk.AppSpec {
	var out []clientsdk.AppSpec
	hasCur := false
	for _, r := range revs {
		if r.TokenNonce != cur.TokenNonce || slices.ContainsFunc(out, func(o clientsdk.AppSpec) bool { return o.Version == r.Version }) {
			continue
		}
		hasCur = hasCur || r.Version == cur.Version
		out = append(out, r)
	}
	if !hasCur {
		cur.Revision = 0
		out = append(out, cur)
	}
	slices.SortFunc(out, func(x, y clientsdk.AppSpec) int { return compareVersions(y.Version, x.Version) })
	return out
}

// historyOf lists kept (newest first, as keptSpecs returns them) for the
// history verb: each version with what changed from the next older one.
func historyOf(kept []clientsdk.AppSpec, current uint64) []clientsdk.HistoryEntry {
	out := make([]clientsdk.HistoryEntry, 0, len(kept))
	for i, s := range kept {
		e := clientsdk.HistoryEntry{Version: s.Version, PushedAt: s.PushedAt, PushedBy: s.PushedBy,
			RollbackOf: s.RollbackOf, Current: s.Version == current}
		if s.Artifact != nil {
			e.SHA256 = s.Artifact.SHA256
		}
		if i+1 < len(kept) {
			e.Changes = clientsdk.DiffSpecs(kept[i+1], s)
		} else {
			e.Oldest = true
		}
		out = append(out, e)
	}
	return out
}

// rollbackTarget decides which version a rollback of app goes to: to, or
// for 0 the newest kept version older than current that is not the same
// spec (same: the versions identical to current, pushed again unchanged).
// kept are the kept versions. Errors: *clientsdk.Error 400 for a version
// after the current one, 404 for one that is not kept (naming those that
// are), 409 for the current one or when every older one is the same.
func rollbackTarget(app string, kept []uint64, same map[uint64]bool, current, to uint64) (uint64, error) {
	switch {
	case to > current:
		return 0, clientsdk.Errorf(400, "BadVersion", "%s has no version %d: its current version is %d", app, to, current)
	case to == current:
		return 0, clientsdk.Errorf(409, "AlreadyRunning", "%s already runs version %d", app, to)
	case to == 0:
		older := false
		for _, v := range kept {
			if v < current {
				older = true
				if v > to && !same[v] {
					to = v
				}
			}
		}
		switch {
		case to == 0 && older:
			return 0, clientsdk.Errorf(409, "AlreadyRunning", "every version %s keeps before its current version %d is the same spec (pushed again unchanged; kept: %s): it already runs that", app, current, versionList(kept))
		case to == 0:
			return 0, clientsdk.Errorf(404, "NotKept", "%s keeps no version before its current version %d (kept: %s)", app, current, versionList(kept))
		}
		return to, nil
	case !slices.Contains(kept, to):
		return 0, clientsdk.Errorf(404, "NotKept", "version %d of %s is not kept; kept: %s (see `dartup history %s`)", to, app, versionList(kept), app)
	}
	return to, nil
}

// versionList writes versions newest first: "12, 11, 10".
func versionList(vs []uint64) string {
	vs = slices.Clone(vs)
	slices.Sort(vs)
	slices.Reverse(vs)
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ", ")
}
