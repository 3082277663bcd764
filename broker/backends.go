package broker

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// downFor is how long an address that refused a connection is avoided
// (used only when no other instance is left).
const downFor = 2 * time.Second

// maxTries bounds the instances one request tries: a dead machine costs
// the dial timeout for each.
const maxTries = 3

// drainLinger keeps a drained address out of the routes a while after its
// drain's wait, in case a status that still routes to it arrives late.
const drainLinger = 5 * time.Second

// backends knows where the gateway sends a daemon's requests: each app's
// instances that are running and ready at an address, as their statuses in
// StatusBucket say, and the requests in flight to each address (for least
// outstanding requests, and for drains).
type backends struct {
	logger *slog.Logger
	name   string // this gateway's name in drain replies
	// self reports whether an address is this gateway's own listener: an
	// instance there would make the gateway proxy to itself.
	self func(addr string) bool

	mu       sync.Mutex
	byApp    map[string]map[string]backend // app → instance key → where it serves
	inflight map[string]*atomic.Int64      // address → requests in flight
	draining map[string]drainMark          // address → the worker drained there
	down     map[string]time.Time          // address → refused a connection; avoided until
}

// backend is one ready instance: its address and its worker's pid.
type backend struct {
	addr string
	pid  int
}

// drainMark keeps a drained worker out of the routes until a time; a new
// worker at the same address (another pid) is not affected.
type drainMark struct {
	pid   int
	until time.Time
}

func newBackends(logger *slog.Logger, name string) *backends {
	return &backends{logger: logger, name: name, byApp: map[string]map[string]backend{},
		inflight: map[string]*atomic.Int64{}, draining: map[string]drainMark{}, down: map[string]time.Time{}}
}

// watch follows StatusBucket until ctx ends.
func (bk *backends) watch(ctx context.Context, kv jetstream.KeyValue) {
	for ctx.Err() == nil {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			bk.logger.Warn("cannot watch instance statuses; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.Updates() {
			if e != nil {
				bk.apply(e.Key(), e.Operation() == jetstream.KeyValuePut, e.Value())
			}
		}
		_ = w.Stop()
	}
}

// apply takes one status entry: a ready, running instance with an address
// is a backend of its app; anything else is not.
func (bk *backends) apply(key string, put bool, value []byte) {
	app, _, ok := clientsdk.ParseInstanceKey(key)
	if !ok {
		return // a lambda's per-node entry
	}
	var st clientsdk.InstanceStatus
	routed := put && json.Unmarshal(value, &st) == nil && routable(st) && (bk.self == nil || !bk.self(st.Address))
	bk.mu.Lock()
	defer bk.mu.Unlock()
	m := bk.byApp[app]
	if !routed {
		delete(m, key)
		if len(m) == 0 {
			delete(bk.byApp, app)
		}
		return
	}
	if m == nil {
		m = map[string]backend{}
		bk.byApp[app] = m
	}
	m[key] = backend{addr: st.Address, pid: st.PID}
	if bk.inflight[st.Address] == nil {
		bk.inflight[st.Address] = new(atomic.Int64)
	}
}

// routable reports whether an instance takes requests: running, ready and
// with an address.
func routable(st clientsdk.InstanceStatus) bool {
	return st.State == clientsdk.StateRunning && st.Ready && st.Address != ""
}

// pick chooses the address of one of app's ready instances, not tried yet
// and not draining: the one with the fewest requests in flight (ties at
// random), preferring addresses that did not refuse a connection lately.
func (bk *backends) pick(app string, tried []string) (string, bool) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	now := time.Now()
	if len(tried) >= maxTries {
		return "", false
	}
	best, bestLoad, bestDown, n := "", int64(0), false, 0
	for _, be := range bk.byApp[app] {
		addr := be.addr
		if slices.Contains(tried, addr) || bk.drained(be, now) {
			continue
		}
		load, down := bk.inflight[addr].Load(), now.Before(bk.down[addr])
		if down && len(tried) > 0 {
			continue // a retry goes only to instances that did not refuse lately
		}
		switch {
		case best == "" || (bestDown && !down) || (down == bestDown && load < bestLoad):
			best, bestLoad, bestDown, n = addr, load, down, 1
		case down == bestDown && load == bestLoad:
			if n++; rand.IntN(n) == 0 { // reservoir: each tie equally likely
				best = addr
			}
		}
	}
	return best, best != ""
}

// drained reports whether be's worker is being drained. bk.mu is held.
func (bk *backends) drained(be backend, now time.Time) bool {
	d, ok := bk.draining[be.addr]
	return ok && now.Before(d.until) && (d.pid == 0 || d.pid == be.pid)
}

// count returns the counter of requests in flight to addr.
func (bk *backends) count(addr string) *atomic.Int64 {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	c := bk.inflight[addr]
	if c == nil {
		c = new(atomic.Int64)
		bk.inflight[addr] = c
	}
	return c
}

// markDown avoids addr for a while after it refused a connection.
func (bk *backends) markDown(addr string) {
	bk.mu.Lock()
	bk.down[addr] = time.Now().Add(downFor)
	bk.mu.Unlock()
}

// ready counts app's routable instances.
func (bk *backends) ready(app string) int {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return len(bk.byApp[app])
}

// drain answers a runner's clientsdk.GatewayDrainRequest: the address leaves
// the routes at once; the answer says how many requests are in flight to
// it, and a second one comes when they are done (or the wait is over).
func (bk *backends) drain(m *nats.Msg, respond func(*nats.Msg, []byte) error) {
	var req clientsdk.GatewayDrainRequest
	if json.Unmarshal(m.Data, &req) != nil || req.Address == "" {
		return
	}
	wait := min(max(req.Wait.D(), 0), clientsdk.MaxKillTimeout)
	bk.mu.Lock()
	bk.draining[req.Address] = drainMark{pid: req.PID, until: time.Now().Add(wait + drainLinger)}
	bk.forgetStale()
	bk.mu.Unlock()
	c := bk.count(req.Address)
	n := c.Load()
	reply := func(done bool) {
		b, _ := json.Marshal(clientsdk.GatewayDrainReply{Gateway: bk.name, InFlight: int(c.Load()), Done: done})
		_ = respond(m, b)
	}
	reply(n <= 0)
	if n <= 0 {
		return
	}
	go func() {
		deadline := time.Now().Add(wait)
		for c.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		reply(true)
	}()
}

// forgetStale drops expired drain and down marks, and the counters of
// addresses that nothing routes to and nothing is in flight to. bk.mu is held.
func (bk *backends) forgetStale() {
	now := time.Now()
	for a, d := range bk.draining {
		if now.After(d.until) {
			delete(bk.draining, a)
		}
	}
	for a, t := range bk.down {
		if now.After(t) {
			delete(bk.down, a)
		}
	}
	routed := map[string]bool{}
	for _, m := range bk.byApp {
		for _, be := range m {
			routed[be.addr] = true
		}
	}
	for a, c := range bk.inflight {
		if _, draining := bk.draining[a]; !routed[a] && c.Load() == 0 && !draining {
			delete(bk.inflight, a)
		}
	}
}
