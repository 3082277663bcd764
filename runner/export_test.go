package runner

import "context"

// PruneStatuses runs the runner's status clean-up now (tests only).
func PruneStatuses(r *Runner, ctx context.Context) { r.pruneStatuses(ctx) }
