package broker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// Collection of what the artifacts store holds that nothing can use.
const (
	// orphanAge is how old an unused upload must be before it is collected:
	// an upload in progress, or one whose push has not come yet, is younger.
	orphanAge = time.Hour
	// gcInterval is the time between collections (the first comes a minute
	// after the server starts).
	gcInterval = 10 * time.Minute
)

// gcLoop collects orphans until ctx ends.
func (a *api) gcLoop(ctx context.Context) {
	wait := time.Minute
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = gcInterval
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		chunks, objects, err := a.collectOrphans(cctx, orphanAge)
		cancel()
		switch {
		case err != nil:
			a.logger.Warn("could not collect unused uploads", "err", err)
		case chunks+objects > 0:
			a.logger.Info("collected unused uploads", "unfinished_uploads", chunks, "unused_artifacts", objects)
		}
		cctx, cancel = context.WithTimeout(ctx, time.Minute)
		if n, err := a.collectDeadNodeLambdas(cctx, deadNodeAge); err != nil {
			a.logger.Warn("could not collect the lambda entries of dead nodes", "err", err)
		} else if n > 0 {
			a.logger.Info("collected the lambda entries of nodes silent for "+deadNodeAge.String(), "entries", n)
		}
		cancel()
	}
}

// collectOrphans deletes, once older than age: the chunks of uploads that
// never finished (a client or a server killed mid-upload: no object refers
// to them), and the artifacts that no kept revision of any app uses (their
// app was removed while the store could not delete, or their push never
// came). It returns how many of each went.
func (a *api) collectOrphans(ctx context.Context, age time.Duration) (chunks, objects int, err error) {
	stream, err := a.b.js.Stream(ctx, "OBJ_"+clientsdk.ArtifactsBucket)
	if err != nil {
		return 0, 0, err
	}
	infos, err := a.objects.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, 0, err
	}
	nuids := map[string]bool{}
	for _, oi := range infos {
		nuids[oi.NUID] = true
	}
	if chunks, err = a.collectChunks(ctx, stream, nuids, age); err != nil {
		return chunks, 0, err
	}
	used, err := a.usedArtifacts(ctx, "")
	if err != nil {
		return chunks, 0, err
	}
	for _, oi := range infos {
		if used[oi.Name] || time.Since(oi.ModTime) < age {
			continue
		}
		a.verifier.forget(oi.Name)
		if err := a.objects.Delete(ctx, oi.Name); err == nil {
			objects++
		}
	}
	return chunks, objects, nil
}

// collectChunks purges the chunk subjects of stream that no object's nuid
// names and whose last chunk is older than age.
func (a *api) collectChunks(ctx context.Context, stream jetstream.Stream, nuids map[string]bool, age time.Duration) (int, error) {
	prefix := "$O." + clientsdk.ArtifactsBucket + ".C."
	si, err := stream.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return 0, err
	}
	n := 0
	for subj := range si.State.Subjects {
		if nuids[strings.TrimPrefix(subj, prefix)] {
			continue
		}
		last, err := stream.GetLastMsgForSubject(ctx, subj)
		if err != nil || time.Since(last.Time) < age {
			continue
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err == nil {
			n++
		}
	}
	return n, nil
}

// usedArtifacts returns the artifacts that the current spec or a kept
// revision (RevisionsBucket) of any app but except ("" for none) refers
// to. The apps bucket's own history is not counted: kill and start use it
// up, and the record of revisions says which versions are kept.
func (a *api) usedArtifacts(ctx context.Context, except string) (map[string]bool, error) {
	used := map[string]bool{}
	specs, err := readEntries(ctx, a.apps)
	if err != nil {
		return nil, err
	}
	for _, e := range specs {
		if e.Key() != except {
			addArtifact(used, e.Value())
		}
	}
	revs, err := readEntries(ctx, a.revs)
	if err != nil {
		return nil, err
	}
	for _, e := range revs {
		if app, _, ok := clientsdk.ParseRevisionKey(e.Key()); !ok || app != except {
			addArtifact(used, e.Value())
		}
	}
	return used, nil
}

// addArtifact adds the artifact object of a stored spec to set.
func addArtifact(set map[string]bool, value []byte) {
	var s clientsdk.AppSpec
	if json.Unmarshal(value, &s) == nil && s.Artifact != nil {
		set[s.Artifact.Object] = true
	}
}
