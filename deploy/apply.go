package deploy

import (
	"context"
	"errors"
	"sync"

	"github.com/dartup/dartup/clientsdk"
)

// BuildFunc builds a .dart file for runtime rt (exe when empty) and
// returns the built file and a cleanup.
type BuildFunc func(ctx context.Context, file string, rt clientsdk.Runtime) (string, func(), error)

// Prepared is a project whose artifacts are built, packed and hashed here:
// the specs to compare with a server's, and what to upload.
type Prepared struct {
	// Specs are the declared specs, artifacts filled in.
	Specs []clientsdk.AppSpec
	arts  map[string]*clientsdk.LocalArtifact // by app
	all   []*clientsdk.LocalArtifact
	clean []func()
}

// Close removes packed bundles and built files.
func (p *Prepared) Close() {
	for _, a := range p.all {
		a.Close()
	}
	for _, f := range p.clean {
		f()
	}
}

// Artifacts returns the distinct artifacts to upload, each once however
// many apps share it.
func (p *Prepared) Artifacts() []*clientsdk.LocalArtifact { return p.all }

// Prepare builds (.dart, with build), packs (folders) and hashes each
// distinct artifact of the project once, and fills the specs' artifacts.
// Nothing is uploaded.
func Prepare(ctx context.Context, p *Project, build BuildFunc) (*Prepared, error) {
	out := &Prepared{arts: map[string]*clientsdk.LocalArtifact{}}
	type key struct {
		src Source
		rt  clientsdk.Runtime
	}
	seen := map[key]*clientsdk.LocalArtifact{}
	var problems []Problem
	for _, e := range p.Entries {
		s := e.Spec
		if e.Source.Path == "" {
			out.Specs = append(out.Specs, s)
			continue
		}
		k := key{e.Source, s.Runtime}
		art, ok := seen[k]
		if !ok {
			var err error
			if art, err = out.prepareOne(ctx, e, build); err != nil {
				if _, isErr := clientsdk.AsError(err); !isErr {
					out.Close()
					return nil, err
				}
				problem := e.At
				problem.Msg = err.Error()
				problems = append(problems, problem)
				continue
			}
			seen[k], out.all = art, append(out.all, art)
		}
		ref := art.Ref
		s.Artifact, s.Runtime = &ref, art.Runtime
		out.arts[s.Name] = art
		out.Specs = append(out.Specs, s)
	}
	if len(problems) > 0 {
		out.Close()
		return nil, &FileError{Problems: problems}
	}
	return out, nil
}

func (p *Prepared) prepareOne(ctx context.Context, e Entry, build BuildFunc) (*clientsdk.LocalArtifact, error) {
	path, spec := e.Source.Path, e.Spec
	if e.Source.Dart {
		if build == nil {
			return nil, clientsdk.Errorf(400, "InvalidFile", "app %s: %s is Dart source and nothing here builds it", spec.Name, path)
		}
		built, cleanup, err := build(ctx, path, spec.Runtime)
		if err != nil {
			return nil, clientsdk.Errorf(400, "BuildFailed", "%v", err)
		}
		p.clean = append(p.clean, cleanup)
		path = built
		if spec.Runtime == "" {
			spec.Runtime = clientsdk.RuntimeExe
		}
	}
	art, err := clientsdk.PrepareArtifact(spec, path)
	if e, ok := clientsdk.AsError(err); ok {
		return nil, clientsdk.Errorf(e.Code, e.Type, "%s", e.Message)
	}
	return art, err
}

// Current returns what a server holds (spec and summary) for the apps the
// project declares, and with prune for every app (to find the service's
// others).
func Current(ctx context.Context, c *clientsdk.Client, names []string, prune bool) ([]clientsdk.AppInfo, error) {
	if prune {
		apps, err := c.List(ctx)
		if err != nil {
			return nil, err
		}
		names = names[:0:0]
		for _, a := range apps {
			names = append(names, a.Name)
		}
	}
	var mu sync.Mutex
	var out []clientsdk.AppInfo
	var firstErr error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			info, err := c.Describe(ctx, n)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				out = append(out, *info)
			case !errors.Is(err, clientsdk.ErrNotFound) && firstErr == nil:
				firstErr = err
			}
		})
	}
	wg.Wait()
	return out, firstErr
}

// Result is how one step of a plan ended.
type Result struct {
	App     string            `json:"app"`
	Action  Action            `json:"action"`
	Outcome clientsdk.Outcome `json:"outcome,omitempty"`
	// Version is the app's version after the step.
	Version uint64                `json:"version,omitempty"`
	Summary *clientsdk.AppSummary `json:"summary,omitempty"`
	Error   string                `json:"error,omitempty"`
	// Stopped says the app was updated while killed: stored, not started.
	Stopped bool `json:"stopped,omitempty"`
	rev     uint64
}

// Failed reports whether the step did not end as it should.
func (r Result) Failed() bool {
	if r.Error != "" {
		return true
	}
	switch {
	case r.Action == Remove || r.Action == Unchanged || r.Action == Taken || r.Stopped:
		return false
	}
	return r.Outcome != clientsdk.OutcomeRunning && r.Outcome != clientsdk.OutcomeDetached
}

// Hooks let the caller show progress.
type Hooks struct {
	// Upload is called before each distinct artifact uploads; it returns
	// the progress callback (may be nil).
	Upload func(art *clientsdk.LocalArtifact) clientsdk.Progress
	// Step is called when a step is applied (pushed or removed), before
	// waiting.
	Step func(r Result)
}

// Apply carries out plan: uploads each distinct artifact of a created or
// updated app once, pushes those apps, then removes the pruned ones. It
// stops at the first failed push or removal (what was applied stays
// applied and is in the results). Waiting for the outcome is Wait's.
func Apply(ctx context.Context, c *clientsdk.Client, plan Plan, prep *Prepared, h Hooks) ([]Result, error) {
	uploaded := map[*clientsdk.LocalArtifact]bool{}
	for _, s := range plan.Steps {
		art := prep.arts[s.App]
		if s.Spec == nil || art == nil || uploaded[art] {
			continue
		}
		var prog clientsdk.Progress
		if h.Upload != nil {
			prog = h.Upload(art)
		}
		if err := c.Upload(ctx, art, prog, false); err != nil {
			return nil, err
		}
		uploaded[art] = true
	}
	var results []Result
	for _, s := range plan.Steps {
		r := Result{App: s.App, Action: s.Action}
		switch s.Action {
		case Create, Update:
			stored, err := c.PushPrepared(ctx, *s.Spec, prep.arts[s.App], nil)
			if err != nil {
				r.Error = err.Error()
				results = append(results, r)
				return results, err
			}
			r.Version, r.rev, r.Stopped = stored.Version, stored.Revision, stored.Stopped
		case Remove:
			if err := c.Remove(ctx, s.App); err != nil && !errors.Is(err, clientsdk.ErrNotFound) {
				r.Error = err.Error()
				results = append(results, r)
				return results, err
			}
		}
		if h.Step != nil && s.Action != Unchanged {
			h.Step(r)
		}
		results = append(results, r)
	}
	return results, nil
}

// Wait waits, for all pushed apps at once, until each runs its new
// version or fails (clientsdk.Client.WaitDeployed), and for removed apps
// to be gone; it fills the results' outcomes.
func Wait(ctx context.Context, c *clientsdk.Client, results []Result) {
	var wg sync.WaitGroup
	for i := range results {
		r := &results[i]
		switch {
		case r.Error != "" || r.Stopped:
		case r.Action == Create || r.Action == Update:
			wg.Go(func() {
				out, sum, err := c.WaitDeployed(ctx, r.App, r.rev)
				r.Outcome, r.Summary = out, sum
				if err != nil {
					r.Error = err.Error()
				}
			})
		case r.Action == Remove:
			wg.Go(func() {
				if err := c.WaitRemoved(ctx, r.App); err != nil {
					r.Error = err.Error()
				}
			})
		}
	}
	wg.Wait()
}
