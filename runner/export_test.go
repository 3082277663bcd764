package runner

import "context"

// PruneStatuses runs the runner's status clean-up now (tests only).
func PruneStatuses(r *Runner, ctx context.Context) { r.pruneStatuses(ctx) }

// ExposeArtifact is exposeArtifact without a credential (tests only).
func ExposeArtifact(root, app, digest, cached string) (string, error) {
	return exposeArtifact(root, app, digest, cached, nil)
}
