package runner

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"slices"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// reconcileLoop brings the node's workers in line with the desired state
// whenever a watched bucket changes, and at least every heartbeat (to notice
// dead nodes and failed heartbeats).
func (r *Runner) reconcileLoop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.heartbeat / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-t.C:
		}
		r.reconcile(ctx)
	}
}

// eligible reports whether node labels satisfy a spec's constraints.
func eligible(spec clientsdk.AppSpec, labels map[string]string) bool {
	for k, v := range spec.Constraints {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// hrw is the rendezvous hash of key on node, the tie-breaker of placement.
func hrw(key, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return h.Sum64()
}

type action struct {
	key   string
	spec  clientsdk.AppSpec
	index int
	// claim: 0 none (already ours), 1 create, 2 take over at rev
	claim int
	rev   uint64
}

func (r *Runner) reconcile(ctx context.Context) {
	if r.synced.Load() < 3 {
		return // not a whole view of the cluster yet
	}
	r.resyncClaims(ctx)
	now := time.Now()
	r.mu.Lock()
	selfOK := now.Sub(r.heartbeatOK) < r.nodeTimeout
	// Fence (stop local daemons, claim nothing) only when this node has lost
	// its NATS connection for longer than the node timeout: a partition, after
	// which other nodes take its instances over. A slow or leaderless
	// JetStream (a server of the cluster died, leaders are being elected)
	// fails every node's heartbeats at once; stopping everything then would
	// turn a blip into an outage.
	if r.nc.IsConnected() {
		r.disconnectedSince = time.Time{}
	} else if r.disconnectedSince.IsZero() {
		r.disconnectedSince = now
	}
	fence := !r.disconnectedSince.IsZero() && now.Sub(r.disconnectedSince) > r.nodeTimeout
	if fence && !r.fenced {
		r.logger.Error("lost the NATS connection for longer than the node timeout; stopping local daemons (other nodes take them over)")
	}
	r.fenced = fence
	// Take over a silent node's claims only with a view of the cluster that
	// has been fresh for a whole node timeout: after this node's own
	// heartbeats failed, the others' may simply not have arrived yet.
	stableView := selfOK && now.Sub(r.heartbeatFailed) > r.nodeTimeout

	live := map[string]clientsdk.Node{}
	for id, ns := range r.liveNodes {
		if now.Sub(ns.seen) <= r.nodeTimeout && !ns.node.Draining {
			live[id] = ns.node
		}
	}
	if selfOK && !r.draining {
		live[r.nodeID] = clientsdk.Node{ID: r.nodeID, Labels: r.labels, MaxInstances: r.maxInstances}
	} else {
		delete(live, r.nodeID)
	}
	load := map[string]int{}
	for _, c := range r.claims {
		load[c.node]++
	}

	desired := map[string]bool{}
	var todo []action
	var stops []stopOrder
	var apps []string
	for name := range r.specs {
		apps = append(apps, name)
	}
	slices.Sort(apps)
	for _, name := range apps {
		spec := r.specs[name]
		if spec.Kind != clientsdk.KindDaemon || spec.Stopped {
			continue
		}
		for i := 0; i < spec.Instances; i++ {
			key := clientsdk.InstanceKey(name, i)
			desired[key] = true
			c, claimed := r.claims[key]
			switch {
			case claimed && c.node == r.nodeID:
				delete(r.unclaimedSince, key)
				// After a lost connection, start nothing from a claim that
				// may have moved meanwhile; running copies keep running.
				if _, running := r.instances[key]; !r.fenced && (running || !r.resync) {
					todo = append(todo, action{key: key, spec: spec, index: i})
				}
			case claimed && isLive(live, c.node):
				delete(r.unclaimedSince, key)
			default:
				if r.fenced || r.resync || !selfOK || (claimed && !stableView) {
					continue
				}
				since, ok := r.unclaimedSince[key]
				if !ok {
					since = now
					r.unclaimedSince[key] = now
				}
				first := r.pickNode(key, spec, live, load)
				if first == "" {
					continue
				}
				load[first]++
				if first == r.nodeID || now.Sub(since) > 2*r.nodeTimeout && eligible(spec, r.labels) && r.hasRoom() && !r.draining {
					a := action{key: key, spec: spec, index: i, claim: 1}
					if claimed {
						a.claim, a.rev = 2, c.rev
					}
					todo = append(todo, a)
				}
			}
		}
	}
	for key, in := range r.instances {
		if desired[key] && !r.fenced {
			if c, ok := r.claims[key]; ok && c.node != r.nodeID {
				stops = append(stops, stopOrder{in: in, reason: stopMoved})
			}
			continue
		}
		reason := stopScaled
		spec, ok := r.specs[in.app]
		switch {
		case r.fenced:
			reason = stopFenced
		case !ok:
			reason = stopRemoved
		case spec.Stopped:
			reason = stopKilled
		case spec.Kind != clientsdk.KindDaemon:
			reason = stopRemoved
		}
		stops = append(stops, stopOrder{in: in, reason: reason})
	}
	for i, s := range stops {
		delete(r.instances, s.in.key)
		// Until the worker is gone, nothing starts again under this key, and
		// its claim is released at the revision it had now (never a newer one).
		if c, ok := r.claims[s.in.key]; ok && c.node == r.nodeID {
			stops[i].claimRev = c.rev
		}
		r.stopping[s.in.key] = true
	}
	for key := range r.unclaimedSince {
		if !desired[key] {
			delete(r.unclaimedSince, key)
		}
	}
	lambdaSpecs := map[string]clientsdk.AppSpec{}
	for name, spec := range r.specs {
		if spec.Kind == clientsdk.KindLambda && !spec.Stopped && eligible(spec, r.labels) && !r.draining {
			lambdaSpecs[name] = spec
		}
	}
	r.mu.Unlock()

	for _, s := range stops {
		go r.finishStop(s)
	}
	for _, a := range todo {
		if a.claim != 0 && !r.tryClaim(ctx, a) {
			continue
		}
		r.ensureRunning(a.key, a.spec, a.index)
	}
	r.reconcileLambdas(ctx, lambdaSpecs)
}

// resyncClaims notices a lost connection and, once connected again, re-reads
// this node's claims from the placement bucket: the watcher replays what it
// missed only some time after the reconnect, and until then this node would
// believe in claims other nodes took over while it was cut off, and start
// copies of instances that already run elsewhere. A claim found moved or
// deleted is stopped by the reconcile that follows.
func (r *Runner) resyncClaims(ctx context.Context) {
	connected := r.nc.IsConnected()
	reconnects := r.nc.Stats().Reconnects
	r.mu.Lock()
	if !connected || reconnects != r.reconnects {
		r.resync = true
	}
	r.reconnects = reconnects
	need := r.resync && connected
	var mine []string
	if need {
		for key, c := range r.claims {
			if c.node == r.nodeID {
				mine = append(mine, key)
			}
		}
	}
	r.mu.Unlock()
	if !need {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.nodeTimeout/2)
	defer cancel()
	fresh := map[string]*claim{}
	for _, key := range mine {
		e, err := r.place.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			fresh[key] = nil
		case err != nil:
			r.logger.Warn("cannot re-read placement after a lost connection; retrying", "key", key, "err", err)
			return
		default:
			var c clientsdk.Claim
			if json.Unmarshal(e.Value(), &c) == nil {
				fresh[key] = &claim{node: c.Node, rev: e.Revision()}
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, c := range fresh {
		old, ok := r.claims[key]
		switch {
		case !ok || (c != nil && c.rev < old.rev):
		case c == nil:
			delete(r.claims, key)
		default:
			r.claims[key] = *c
		}
	}
	if r.nc.Stats().Reconnects == r.reconnects {
		r.resync = false
		r.logger.Info("placement re-read after a lost connection", "own_claims", len(mine))
	}
}

type stopOrder struct {
	in       *instance
	reason   stopReason
	claimRev uint64 // this node's claim revision when the stop was ordered; 0: none
}

// finishStop stops an instance, cleans up after it according to why it
// stopped, and only then lets the key run again on this node.
func (r *Runner) finishStop(s stopOrder) {
	s.in.requestStop(s.reason)
	<-s.in.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch s.reason {
	case stopRemoved, stopScaled:
		r.releaseClaimAt(ctx, s.in.key, s.claimRev)
		r.deleteStatus(s.in.app, s.in.index)
	case stopKilled:
		r.releaseClaimAt(ctx, s.in.key, s.claimRev)
	}
	r.mu.Lock()
	delete(r.stopping, s.in.key)
	r.mu.Unlock()
	r.poke()
}

func isLive(live map[string]clientsdk.Node, id string) bool {
	_, ok := live[id]
	return ok
}

func (r *Runner) hasRoom() bool {
	return r.maxInstances == 0 || len(r.instances) < r.maxInstances
}

// pickNode chooses the node that should claim key: the least-loaded live node
// that is eligible and has room, ties broken by rendezvous hash. Every node
// computes the same answer from the same view, so only one of them claims;
// if it does not within twice the node timeout, any eligible node may.
func (r *Runner) pickNode(key string, spec clientsdk.AppSpec, live map[string]clientsdk.Node, load map[string]int) string {
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

// tryClaim writes this node's claim on a.key with compare-and-set: create when
// unclaimed, update at the dead owner's revision when taking over.
func (r *Runner) tryClaim(ctx context.Context, a action) bool {
	b, _ := json.Marshal(clientsdk.Claim{Node: r.nodeID, At: time.Now().UTC()})
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var rev uint64
	var err error
	if a.claim == 1 {
		rev, err = r.place.Create(cctx, a.key, b)
	} else {
		rev, err = r.place.Update(cctx, a.key, b, a.rev)
	}
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			r.logger.Warn("claim failed", "key", a.key, "err", err)
		}
		return false
	}
	r.mu.Lock()
	if c, ok := r.claims[a.key]; !ok || c.rev < rev {
		r.claims[a.key] = claim{node: r.nodeID, rev: rev}
	}
	delete(r.unclaimedSince, a.key)
	r.mu.Unlock()
	what := "claimed"
	if a.claim == 2 {
		what = "took over from a dead node"
	}
	r.logger.Info("instance placed here", "key", a.key, "how", what, "revision", rev)
	r.event(a.spec.Name, clientsdk.EventPlaced, a.index, what+" by "+r.nodeID)
	return true
}

// ensureRunning starts a supervisor for key or hands it a new spec.
func (r *Runner) ensureRunning(key string, spec clientsdk.AppSpec, index int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.claims[key]; !ok || c.node != r.nodeID || r.fenced || r.stopping[key] {
		return
	}
	if in, ok := r.instances[key]; ok {
		if in.sentRev != spec.Revision {
			in.sentRev = spec.Revision
			in.updateSpec(spec)
		}
		return
	}
	in := newInstance(r, key, spec.Name, index)
	in.sentRev = spec.Revision
	r.instances[key] = in
	go in.run(spec)
}

// reconcileLambdas deploys lambdas that should be hosted here and undeploys the rest.
func (r *Runner) reconcileLambdas(ctx context.Context, want map[string]clientsdk.AppSpec) {
	if r.lambdas == nil {
		return
	}
	r.mu.Lock()
	var gone []string
	for name := range r.deployed {
		if _, ok := want[name]; !ok {
			gone = append(gone, name)
			delete(r.deployed, name)
		}
	}
	var deploy []clientsdk.AppSpec
	now := time.Now()
	for name, spec := range want {
		if r.deployed[name] == spec.Revision || r.deploying[name] {
			continue
		}
		if f, ok := r.deployFailed[name]; ok && f.rev == spec.Revision && now.Before(f.retryAt) {
			continue
		}
		r.deploying[name] = true
		deploy = append(deploy, spec)
	}
	r.mu.Unlock()
	for _, name := range gone {
		r.lambdas.Undeploy(name)
	}
	// Deploying fetches the artifact, which may take a while: off the
	// reconcile loop, so that fencing, takeovers and stops go on meanwhile.
	for _, spec := range deploy {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			cmd, err := r.resolveCommand(ctx, spec, -1)
			if err == nil {
				err = r.lambdas.Deploy(spec, cmd)
			}
			r.mu.Lock()
			delete(r.deploying, spec.Name)
			if err == nil {
				r.deployed[spec.Name] = spec.Revision
				delete(r.deployFailed, spec.Name)
			} else {
				r.deployFailed[spec.Name] = failedDeploy{rev: spec.Revision, retryAt: time.Now().Add(lambdaRetry)}
			}
			r.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				r.logger.Error("cannot host lambda; trying again", "app", spec.Name, "in", lambdaRetry, "err", err)
				r.putStatus(clientsdk.InstanceStatus{App: spec.Name, Instance: -1, Node: r.nodeID, State: clientsdk.StateErrored,
					LastError: err.Error(), SpecRevision: spec.Revision})
			}
			r.poke()
		}()
	}
}

// lambdaRetry is the wait before a failed lambda deploy is tried again.
const lambdaRetry = 5 * time.Second

// failedDeploy remembers a lambda revision that could not be deployed.
type failedDeploy struct {
	rev     uint64
	retryAt time.Time
}
