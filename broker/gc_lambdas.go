package broker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// deadNodeAge is how long a node must have been silent before its lambda
// status entries are deleted: a node cut off for a moment writes them again
// when it comes back (the reporter rewrites an entry at least every minute).
const deadNodeAge = 10 * time.Minute

// staleLambdaEntry is a lambda status entry of a node, as the collector
// judges it.
type staleLambdaEntry struct {
	key       string
	revision  uint64
	node      string
	updatedAt time.Time
}

// staleLambdas returns the lambda status entries whose node is
// not alive and which were last written more than age before now: their
// warm workers are gone and their counters belong to a node that no longer
// runs (list, info and the metrics would keep showing them).
func staleLambdas(entries []staleLambdaEntry, live map[string]clientsdk.Node, now time.Time, age time.Duration) []staleLambdaEntry {
	var out []staleLambdaEntry
	for _, e := range entries {
		if _, ok := live[e.node]; !ok && now.Sub(e.updatedAt) > age {
			out = append(out, e)
		}
	}
	return out
}

// collectDeadNodeLambdas deletes the lambda status entries of nodes silent
// for age (see staleLambdas) and returns how many went.
func (a *api) collectDeadNodeLambdas(ctx context.Context, age time.Duration) (int, error) {
	_, live, err := a.nodesNow(ctx)
	if err != nil {
		return 0, err
	}
	entries, err := readEntries(ctx, a.status)
	if err != nil {
		return 0, err
	}
	var lambdas []staleLambdaEntry
	for _, e := range entries {
		var s clientsdk.InstanceStatus
		if json.Unmarshal(e.Value(), &s) != nil || s.Lambda == nil || e.Key() != clientsdk.LambdaStatusKey(s.App, s.Node) {
			continue
		}
		lambdas = append(lambdas, staleLambdaEntry{key: e.Key(), revision: e.Revision(), node: s.Node, updatedAt: e.Created()})
	}
	n := 0
	for _, e := range staleLambdas(lambdas, live, time.Now(), age) {
		// Only the entry as read: a node that came back and wrote it again keeps it.
		if err := a.status.Delete(ctx, e.key, jetstream.LastRevision(e.revision)); err == nil {
			n++
		}
	}
	return n, nil
}
