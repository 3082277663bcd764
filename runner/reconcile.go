package runner

import (
	"context"
	"encoding/json"
	"errors"
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

// reconcile observes (a view of the world under the lock), plans (a pure
// function of the view) and applies the plan: stops, claims, starts and
// lambda deployments.
func (r *Runner) reconcile(ctx context.Context) {
	if r.synced.Load() < 3 {
		return // not a whole view of the cluster yet
	}
	r.resyncClaims(ctx)
	r.mu.Lock()
	v := r.observe(time.Now())
	p := plan(v)
	stops := r.takeStops(p.stops)
	r.unclaimedSince = p.unclaimedSince
	r.mu.Unlock()

	for _, s := range stops {
		r.stopWG.Add(1)
		go r.finishStop(s)
	}
	dead := map[string]bool{} // takeover owners confirmed dead, this round
	statuses := map[string]map[int]clientsdk.InstanceStatus{}
	for _, a := range p.run {
		if a.claim == claimNone && !r.gateOpen(ctx, a, statuses) {
			continue
		}
		if owner := a.silentOwner; owner != "" {
			if _, checked := dead[owner]; !checked {
				dead[owner] = r.confirmDead(ctx, owner)
			}
			if !dead[owner] {
				continue
			}
		}
		if a.claim != claimNone && !r.tryClaim(ctx, a) {
			continue
		}
		spec, failed := r.specToRun(ctx, a, statuses)
		r.ensureRunning(a.key, spec, a.index, failed)
	}
	r.deploys.reconcile(ctx, p.lambdas, time.Now())
}

// observe takes the view plan works on; r.mu is held. It also updates the
// node's own health: how long it has been disconnected, and whether it is
// fenced because of that.
func (r *Runner) observe(now time.Time) view {
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
	selfOK := now.Sub(r.heartbeatOK) < r.nodeTimeout
	local := make(map[string]bool, len(r.instances))
	for key := range r.instances {
		local[key] = true
	}
	return view{
		self: r.nodeID, now: now, nodeTimeout: r.nodeTimeout, labels: r.labels, maxInstances: r.maxInstances,
		selfOK: selfOK,
		// Take over a silent node's claims only with a view of the cluster
		// that has been fresh for a whole node timeout: after this node's own
		// heartbeats failed, the others' may simply not have arrived yet.
		stableView: selfOK && now.Sub(r.heartbeatFailed) > r.nodeTimeout,
		fenced:     r.fenced, resync: r.resync, draining: r.draining,
		specs: r.specs, nodes: r.liveNodes, claims: r.claims, local: local, stopping: r.stopping,
		unclaimedSince: r.unclaimedSince, hostedElsewhere: r.lambdasHostedElsewhere(now),
	}
}

// confirmDead checks, before taking a node's instances over, that it is
// dead as the nodes bucket sees it: its last stored heartbeat is older than
// the server's clock now by more than the node timeout. Both times are the
// server's: the node's heartbeat as stored, and this node's own last
// heartbeat as stored plus the time since it was acked here (an
// underestimate of the server's now, so the doubt goes to the other node).
// Neither a watcher that fell behind (after a server of the cluster died)
// nor the clocks of the machines can make a live node look dead. A node
// whose entry is gone (it stopped cleanly, or its entry expired) is dead.
// Any doubt (a failed read) is no.
func (r *Runner) confirmDead(ctx context.Context, node string) bool {
	ctx, cancel := context.WithTimeout(ctx, r.nodeTimeout/2)
	defer cancel()
	if r.heartbeatOnce(ctx) != nil { // a fresh stamp of the server's clock
		return false
	}
	self, err := r.nodes.Get(ctx, r.nodeID)
	if err != nil {
		return false
	}
	other, err := r.nodes.Get(ctx, node)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return true
	}
	if err != nil {
		return false
	}
	if gap := r.serverNow(self).Sub(other.Created()); gap <= r.nodeTimeout {
		r.mu.Lock()
		if ns, ok := r.liveNodes[node]; ok { // the watcher is behind: the node lives
			ns.seen = time.Now().Add(-gap)
			r.liveNodes[node] = ns
		}
		r.mu.Unlock()
		r.logger.Info("a node looked silent but its heartbeats are in the bucket; not taking its instances", "node", node, "behind", gap.Round(time.Millisecond))
		return false
	}
	return true
}

// serverNow estimates the server's clock now from this node's heartbeat
// entry self: when it was stored, plus the time since it was acked here if
// it is the heartbeat this node last wrote.
func (r *Runner) serverNow(self jetstream.KeyValueEntry) time.Time {
	r.mu.Lock()
	ok, rev := r.heartbeatOK, r.heartbeatRev
	r.mu.Unlock()
	if self.Revision() != rev {
		return self.Created()
	}
	return self.Created().Add(time.Since(ok))
}

// takeStops turns planned stops into stop orders: each instance leaves the
// running set, its key is marked stopping (nothing starts under it until the
// worker is gone), and its claim is to be released at the revision it has
// now, never a newer one. r.mu is held.
func (r *Runner) takeStops(plans []stopPlan) []stopOrder {
	var out []stopOrder
	for _, sp := range plans {
		in, ok := r.instances[sp.key]
		if !ok {
			continue
		}
		s := stopOrder{in: in, reason: sp.reason}
		if c, ok := r.claims[sp.key]; ok && c.node == r.nodeID {
			s.claimRev = c.rev
		}
		delete(r.instances, sp.key)
		r.stopping[sp.key] = true
		out = append(out, s)
	}
	return out
}

// lambdasHostedElsewhere returns the lambdas that a live node other than
// this one, not draining, reports hosting. r.mu is held.
func (r *Runner) lambdasHostedElsewhere(now time.Time) map[string]bool {
	out := map[string]bool{}
	for id, ns := range r.liveNodes {
		if id == r.nodeID || ns.node.Draining || now.Sub(ns.seen) > r.nodeTimeout {
			continue
		}
		for _, name := range ns.node.LambdaNames {
			out[name] = true
		}
	}
	return out
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
	defer r.stopWG.Done()
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
	r.reapApp(s.in.app)
	r.poke()
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
func (r *Runner) ensureRunning(key string, spec clientsdk.AppSpec, index int, failed rolloutFailure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.claims[key]; !ok || c.node != r.nodeID || r.fenced || r.stopping[key] {
		return
	}
	if in, ok := r.instances[key]; ok {
		if in.sentRev != spec.Revision {
			in.sentRev, in.sentSpec = spec.Revision, spec
			in.updateSpec(spec)
		}
		return
	}
	in := newInstance(r, key, spec.Name, index)
	in.sentRev, in.sentSpec = spec.Revision, spec
	r.instances[key] = in
	go in.run(&spec, failed)
}
