package runner

import (
	"hash/fnv"
	"slices"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// view is what a node knows of the world at one moment: the desired state,
// the nodes it has heard from, the claims, and its own instances and health.
// plan turns it into actions; nothing in it is read again while planning.
type view struct {
	self         string
	now          time.Time
	nodeTimeout  time.Duration
	labels       map[string]string
	maxInstances int
	// selfOK: this node's own heartbeat succeeded within the node timeout.
	selfOK bool
	// stableView: this node's heartbeats have not failed for a whole node
	// timeout, so the silence of another node is its own, not ours.
	stableView bool
	// fenced: this node lost its connection for longer than the node
	// timeout; others take its instances over, it runs and claims nothing.
	fenced bool
	// resync: this node lost its connection (even briefly) and has not yet
	// re-read its own claims; it starts and claims nothing meanwhile.
	resync   bool
	draining bool

	// specs are shared with the runner, which never changes a stored spec
	// (it replaces it): plan and its actions point at them, copying none.
	specs  map[string]*clientsdk.AppSpec
	nodes  map[string]nodeSeen
	claims map[string]claim
	// local are the keys of the instances this node supervises.
	local map[string]bool
	// stopping are keys whose worker is being stopped here.
	stopping map[string]bool
	// unclaimedSince is when each desired key was first seen without a
	// live owner.
	unclaimedSince map[string]time.Time
	// hostedElsewhere: lambda name → a live, not draining node other than
	// this one hosts it.
	hostedElsewhere map[string]bool
}

// claimKind says how a key is claimed.
type claimKind int

const (
	claimNone     claimKind = iota // already this node's
	claimCreate                    // unclaimed: create the claim
	claimTakeover                  // owned by a silent node: update at its revision
)

// action is one instance this node should run: ensure it runs with spec,
// claiming it first when claim says so.
type action struct {
	key   string
	spec  *clientsdk.AppSpec // shared: never changed
	index int
	claim claimKind
	rev   uint64 // the dead owner's claim revision, for claimTakeover
	// silentOwner is the owner of a claim taken over because its
	// heartbeats stopped (not because it drains), to confirm dead first.
	silentOwner string
}

// stopPlan is a local instance to stop and why.
type stopPlan struct {
	key    string
	reason stopReason
}

// actions is what plan decides.
type actions struct {
	run   []action
	stops []stopPlan
	// unclaimedSince replaces the view's (keys no longer desired are dropped).
	unclaimedSince map[string]time.Time
	// lambdas are the lambdas this node should host.
	lambdas map[string]clientsdk.AppSpec
}

// plan decides, from v alone, which instances this node claims, runs and
// stops, and which lambdas it hosts. It is pure: every node computes the
// same placement from the same view, so that only one of them claims.
//
//   - An instance claimed by this node runs here (unless fenced, or, after a
//     lost connection, not yet re-read: running copies keep running).
//   - An instance claimed by a live node is left alone.
//   - An unclaimed instance, or one whose owner is silent for the node
//     timeout, is claimed by the node pickNode prefers; any other eligible
//     node with room claims it once it has waited twice the node timeout.
//     A takeover needs a stable view of this node's own health.
//   - A local instance no longer desired, or claimed by another node, is
//     stopped with the reason why.
//   - Lambdas are hosted on every eligible node that is not draining; a
//     draining node keeps a lambda until another node hosts it.
func plan(v view) actions {
	a := actions{unclaimedSince: map[string]time.Time{}, lambdas: map[string]clientsdk.AppSpec{}}
	live := v.liveNodes()
	load := map[string]int{}
	for _, c := range v.claims {
		load[c.node]++
	}
	desired := map[string]bool{}
	running := len(v.local)
	for _, name := range sortedKeys(v.specs) {
		spec := v.specs[name]
		if spec.Kind == clientsdk.KindLambda {
			if v.hostsLambda(*spec) {
				a.lambdas[name] = *spec
			}
			continue
		}
		if spec.Stopped {
			continue
		}
		for i := 0; i < spec.Instances; i++ {
			key := clientsdk.InstanceKey(name, i)
			desired[key] = true
			if act, ok := v.placeOne(key, spec, i, live, load, running, a.unclaimedSince); ok {
				a.run = append(a.run, act)
				if act.claim != claimNone {
					running++
				}
			}
		}
	}
	a.stops = v.stopsFor(desired)
	return a
}

// placeOne decides about one desired instance: run it here (claiming it
// first if need be) or leave it. It records in since when the key was first
// seen without a live owner, and counts a claim in load.
func (v view) placeOne(key string, spec *clientsdk.AppSpec, index int, live map[string]clientsdk.Node, load map[string]int, running int, since map[string]time.Time) (action, bool) {
	c, claimed := v.claims[key]
	switch {
	case v.stopping[key]:
		// Until the old worker is gone, nothing starts or is claimed under
		// this key here.
		return action{}, false
	case claimed && c.node == v.self:
		run := !v.fenced && (v.local[key] || !v.resync)
		return action{key: key, spec: spec, index: index}, run
	case claimed && isLive(live, c.node):
		return action{}, false
	case v.fenced || v.resync || !v.selfOK || (claimed && !v.stableView):
		if t, ok := v.unclaimedSince[key]; ok {
			since[key] = t
		}
		return action{}, false
	}
	first, ok := v.unclaimedSince[key]
	if !ok {
		first = v.now
	}
	since[key] = first
	pick := pickNode(key, *spec, live, load)
	if pick == "" {
		return action{}, false
	}
	load[pick]++
	late := v.now.Sub(first) > 2*v.nodeTimeout && eligible(*spec, v.labels) && v.hasRoom(running) && !v.draining
	if pick != v.self && !late {
		return action{}, false
	}
	act := action{key: key, spec: spec, index: index, claim: claimCreate}
	if claimed {
		act.claim, act.rev = claimTakeover, c.rev
		if ns, ok := v.nodes[c.node]; !ok || v.now.Sub(ns.seen) > v.nodeTimeout {
			act.silentOwner = c.node
		}
	}
	return act, true
}

// stopsFor lists the local instances to stop: those no longer desired, and
// those another node holds now.
func (v view) stopsFor(desired map[string]bool) []stopPlan {
	var out []stopPlan
	for _, key := range sortedKeys(v.local) {
		if desired[key] && !v.fenced {
			if c, ok := v.claims[key]; ok && c.node != v.self {
				out = append(out, stopPlan{key: key, reason: stopMoved})
			}
			continue
		}
		out = append(out, stopPlan{key: key, reason: v.stopReason(key)})
	}
	return out
}

// stopReason says why the local, no longer desired instance key stops.
func (v view) stopReason(key string) stopReason {
	app, _, _ := clientsdk.ParseInstanceKey(key)
	spec, ok := v.specs[app]
	switch {
	case v.fenced:
		return stopFenced
	case !ok || spec.Kind != clientsdk.KindDaemon:
		return stopRemoved
	case spec.Stopped:
		return stopKilled
	}
	return stopScaled
}

// liveNodes returns the nodes that take work: heard from within the node
// timeout and not draining, this node included while its heartbeats work.
func (v view) liveNodes() map[string]clientsdk.Node {
	live := map[string]clientsdk.Node{}
	for id, ns := range v.nodes {
		if v.now.Sub(ns.seen) <= v.nodeTimeout && !ns.node.Draining {
			live[id] = ns.node
		}
	}
	if v.selfOK && !v.draining {
		live[v.self] = clientsdk.Node{ID: v.self, Labels: v.labels, MaxInstances: v.maxInstances}
	} else {
		delete(live, v.self)
	}
	return live
}

// hostsLambda reports whether this node should host the lambda spec: it is
// not stopped and this node's labels match; a draining node keeps it only
// until another node hosts it, so that no request finds nobody.
func (v view) hostsLambda(spec clientsdk.AppSpec) bool {
	if spec.Stopped || !eligible(spec, v.labels) {
		return false
	}
	return !v.draining || !v.hostedElsewhere[spec.Name]
}

func (v view) hasRoom(running int) bool {
	return v.maxInstances == 0 || running < v.maxInstances
}

func isLive(live map[string]clientsdk.Node, id string) bool {
	_, ok := live[id]
	return ok
}

// eligible reports whether node labels satisfy a spec's constraints.
func eligible(spec clientsdk.AppSpec, labels map[string]string) bool {
	return clientsdk.MatchesConstraints(spec.Constraints, labels)
}

// pickNode chooses the node that should claim key: the least-loaded live node
// that is eligible and has room, ties broken by rendezvous hash. Every node
// computes the same answer from the same view.
func pickNode(key string, spec clientsdk.AppSpec, live map[string]clientsdk.Node, load map[string]int) string {
	best, bestLoad, bestHash := "", 0, uint64(0)
	for id, n := range live {
		if !eligible(spec, n.Labels) || (n.MaxInstances > 0 && load[id] >= n.MaxInstances) {
			continue
		}
		l, h := load[id], hrw(key, id)
		if best == "" || l < bestLoad || (l == bestLoad && h > bestHash) {
			best, bestLoad, bestHash = id, l, h
		}
	}
	return best
}

// hrw is the rendezvous hash of key on node, the tie-breaker of placement.
func hrw(key, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return h.Sum64()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
