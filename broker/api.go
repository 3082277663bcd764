package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/replies"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// api is the control API: the "dartup" micro service on dartup.api.*.
type api struct {
	b       *Broker
	svc     micro.Service
	unknown *nats.Subscription
	apps    jetstream.KeyValue
	revs    jetstream.KeyValue // the versions apps keep (revisions.go)
	status  jetstream.KeyValue
	nodes   jetstream.KeyValue
	place   jetstream.KeyValue
	objects jetstream.ObjectStore
	// verifier checks the bytes of the artifacts that pushes refer to.
	verifier *artifactVerifier
	// gcCancel stops the collection of unused uploads (gcLoop).
	gcCancel context.CancelFunc
	// busy holds a slot per request running (see apiConcurrency).
	busy   chan struct{}
	logger *slog.Logger
	// verbs holds the registered verbs; written only before the
	// unknown-verb subscription starts, read-only afterwards.
	verbs map[string]bool
	// guard refuses (and counts) requests whose reply subject is not an
	// inbox: they are neither run nor answered.
	guard *replies.Replier
	// routesMu makes a route check and the write of its spec one step
	// (storeNewVersion).
	routesMu sync.Mutex
}

func startAPI(ctx context.Context, b *Broker) (*api, error) {
	a := &api{b: b, logger: b.logger.With("component", "api"), verbs: map[string]bool{}, busy: make(chan struct{}, apiConcurrency)}
	a.guard = replies.New(b.apiNC, a.logger, b.cfg.ReplyPrefixes...)
	var err error
	if a.apps, err = b.js.KeyValue(ctx, clientsdk.AppsBucket); err != nil {
		return nil, err
	}
	if a.revs, err = b.js.KeyValue(ctx, clientsdk.RevisionsBucket); err != nil {
		return nil, err
	}
	if a.status, err = b.js.KeyValue(ctx, clientsdk.StatusBucket); err != nil {
		return nil, err
	}
	if a.nodes, err = b.js.KeyValue(ctx, clientsdk.NodesBucket); err != nil {
		return nil, err
	}
	if a.place, err = b.js.KeyValue(ctx, clientsdk.PlacementBucket); err != nil {
		return nil, err
	}
	if a.objects, err = b.js.ObjectStore(ctx, clientsdk.ArtifactsBucket); err != nil {
		return nil, err
	}
	a.verifier = newArtifactVerifier(a.objects, a.logger)
	gctx, gcCancel := context.WithCancel(context.Background())
	a.gcCancel = gcCancel
	go a.gcLoop(gctx)
	// The service runs on a connection that can receive API requests and
	// publish replies, nothing else: whatever reply subject a caller sets,
	// the answer cannot land on dartup's or JetStream's own subjects.
	a.svc, err = micro.AddService(b.apiNC, micro.Config{
		Name:        clientsdk.ServiceName,
		Version:     semver(b.cfg.Version),
		Description: "dartup control API: push, list, describe, kill, start, restart, remove, info, nodes, history, rollback, schedules, dead letters",
		Metadata:    map[string]string{"server_name": b.cfg.ServerName, "data_dir": b.cfg.DataDir},
		// `nats micro stats dartup` shows per-lambda stats in the invoke endpoint's data.
		StatsHandler: a.endpointStats,
	})
	if err != nil {
		return nil, fmt.Errorf("start control API: %w", err)
	}
	g := a.svc.AddGroup(clientsdk.APIPrefix)
	endpoints := map[string]func(context.Context, micro.Request) (any, error){
		clientsdk.VerbList:     a.list,
		clientsdk.VerbInfo:     a.info,
		clientsdk.VerbDescribe: a.describe,
		clientsdk.VerbPush:     a.push,
		clientsdk.VerbKill:     a.kill,
		clientsdk.VerbStart:    a.start,
		clientsdk.VerbRestart:  a.restart,
		clientsdk.VerbRemove:   a.remove,
		clientsdk.VerbNodes:    a.listNodes,
		clientsdk.VerbRoutes:   a.routes,
		clientsdk.VerbHistory:  a.history,
		clientsdk.VerbRollback: a.rollback,
		// dead letters of async invocations (api_dlq.go)
		clientsdk.VerbDLQList: a.dlqList, clientsdk.VerbDLQShow: a.dlqShow,
		clientsdk.VerbDLQRedrive: a.dlqRedrive, clientsdk.VerbDLQPurge: a.dlqPurge,
	}
	endpoints[clientsdk.VerbSchedules] = a.schedules // api_schedules.go
	endpoints[clientsdk.VerbScale] = a.scale         // api_scale.go
	for verb, h := range endpoints {
		a.verbs[verb] = true
		if err := g.AddEndpoint(verb, a.handler(verb, h)); err != nil {
			_ = a.svc.Stop()
			return nil, fmt.Errorf("add endpoint %s: %w", verb, err)
		}
	}
	// Unknown verbs get a 404 service error rather than "no responders".
	a.unknown, err = b.apiNC.QueueSubscribe(clientsdk.APIPrefix+".>", "dartup-api-unknown", func(m *nats.Msg) {
		verb := strings.TrimPrefix(m.Subject, clientsdk.APIPrefix+".")
		if a.verbs[verb] || !a.guard.Allowed(m) {
			return
		}
		e := clientsdk.Errorf(404, "UnknownVerb", "unknown control API verb %q; known verbs: %s", verb, a.verbList())
		_ = clientsdk.RespondError(m, e)
	})
	if err != nil {
		_ = a.svc.Stop()
		return nil, err
	}
	// The server has every endpoint's subscription before Start returns:
	// a client that connects then finds the API.
	if err := b.apiNC.FlushTimeout(5 * time.Second); err != nil {
		_ = a.svc.Stop()
		return nil, fmt.Errorf("start control API: %w", err)
	}
	return a, nil
}

func (a *api) verbList() string {
	var v []string
	for k := range a.verbs {
		v = append(v, k)
	}
	slices.Sort(v)
	return strings.Join(v, ", ")
}

// semver turns a version like "dev" into one micro accepts.
func semver(v string) string {
	v = strings.TrimPrefix(v, "v")
	if len(v) > 0 && v[0] >= '0' && v[0] <= '9' && strings.Count(v, ".") >= 2 {
		return v
	}
	return "0.0.0-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, v)
}

func (a *api) stop() error {
	if a.gcCancel != nil {
		a.gcCancel()
	}
	var errs []error
	if a.unknown != nil {
		errs = append(errs, a.unknown.Unsubscribe())
	}
	if a.svc != nil {
		errs = append(errs, a.svc.Stop())
	}
	if a.verifier != nil {
		a.verifier.stop()
	}
	return errors.Join(errs...)
}

// handler wraps a verb: it bounds its time, answers its result as JSON or its
// error as service-error headers with a JSON body, and never panics the server.
func (a *api) handler(verb string, h func(context.Context, micro.Request) (any, error)) micro.HandlerFunc {
	return func(req micro.Request) {
		if !a.guard.Check(req.Subject(), req.Reply()) {
			return // neither run nor answered
		}
		// Each request runs on its own, up to apiConcurrency at once: one
		// slow request (a push waiting for its artifact) does not hold up
		// the verb's others.
		a.busy <- struct{}{}
		go func() {
			defer func() { <-a.busy }()
			a.serve(verb, h, req)
		}()
	}
}

// apiConcurrency bounds the control API requests a server runs at once;
// more wait for a slot.
const apiConcurrency = 64

// serve runs one control API request and answers it.
func (a *api) serve(verb string, h func(context.Context, micro.Request) (any, error), req micro.Request) {
	defer func() {
		if r := recover(); r != nil {
			a.logger.Error("control API handler panicked", "verb", verb, "panic", r)
			e := clientsdk.Errorf(500, "Internal", "internal error in %s; see the server log", verb)
			a.respond(req.Reply(), nil, e)
		}
	}()
	ctx, cancel := context.WithDeadline(context.Background(), requestDeadline(req.Headers(), time.Now()))
	defer cancel()
	res, err := h(ctx, req)
	if err != nil {
		err = a.b.disk.asDiskFull(err, "the "+verb)
		e, ok := clientsdk.AsError(err)
		switch {
		case ok:
		case clientsdk.IsTransient(err):
			a.logger.Warn("control API: JetStream unavailable", "verb", verb, "err", err)
			e = clientsdk.Errorf(503, "Unavailable", "%s: JetStream is not answering right now (a cluster electing a leader?): %v; try again", verb, err)
		default:
			a.logger.Error("control API error", "verb", verb, "err", err)
			e = clientsdk.Errorf(500, "Internal", "%s failed: %v", verb, err)
		}
		a.respond(req.Reply(), nil, e)
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		a.respond(req.Reply(), nil, clientsdk.Errorf(500, "Internal", "encode reply: %v", err))
		return
	}
	a.respond(req.Reply(), b, nil)
}

// maxRequestTime bounds a control API request.
const maxRequestTime = 30 * time.Second

// requestDeadline is when a request's handler gives up: 30 s after now, or
// earlier when the caller says it stops waiting then (clientsdk's
// HeaderDeadline), less a margin for the answer's way back, so that nothing
// is applied after the caller has given up.
func requestDeadline(h micro.Headers, now time.Time) time.Time {
	d := now.Add(maxRequestTime)
	ms, err := strconv.ParseInt(nats.Header(h).Get(clientsdk.HeaderDeadline), 10, 64)
	if err != nil {
		return d
	}
	const margin = 250 * time.Millisecond
	caller := time.UnixMilli(ms).Add(-margin)
	if caller.Before(d) {
		d = caller
	}
	return d
}

// respond answers a request at reply (an inbox: the handler checked it)
// over the API's connection: data, or e with the service-error headers
// micro's Request.Error sets. serve runs after micro's handler returned,
// when the Request may no longer be written to.
func (a *api) respond(reply string, data []byte, e *clientsdk.Error) {
	m := nats.NewMsg(reply)
	m.Data = data
	if e != nil {
		m.Header.Set(micro.ErrorHeader, e.Message)
		m.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(e.Code))
		m.Data = e.Body()
	}
	if err := a.b.apiNC.PublishMsg(m); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		a.logger.Warn("cannot answer a control API request", "err", err)
	}
}

// decodeName reads a NameRequest and validates the name.
func decodeName(req micro.Request) (string, error) {
	var r clientsdk.NameRequest
	if err := clientsdk.DecodeRequest(req.Data(), &r); err != nil {
		return "", err
	}
	if err := clientsdk.ValidateName(r.Name); err != nil {
		return "", err
	}
	return r.Name, nil
}

func (a *api) info(ctx context.Context, _ micro.Request) (any, error) {
	b := a.b
	ai, err := b.js.AccountInfo(ctx)
	if err != nil {
		return nil, err
	}
	n := 0
	if keys, err := a.apps.ListKeys(ctx); err == nil {
		for range keys.Keys() {
			n++
		}
	}
	disk := b.disk.usage()
	info := &clientsdk.ServerInfo{
		Version:       b.cfg.Version,
		ServerVersion: server.VERSION,
		ServerName:    b.cfg.ServerName,
		NodeID:        b.ns.ID(),
		DataDir:       b.cfg.DataDir,
		Started:       b.started,
		Uptime:        clientsdk.Duration(time.Since(b.started).Round(time.Millisecond)),
		NATSURL:       b.NATSURL(),
		HTTPURL:       b.HTTPURL(),
		RequireAuth:   b.cfg.RequirePassword,
		JetStream: clientsdk.JetStreamUsage{
			Memory: ai.Memory, Storage: ai.Store, Streams: ai.Streams, MaxStorage: disk.StoreMax,
		},
		Apps:            n,
		RefusedRequests: b.RefusedRequests(),
		Disk:            disk,
		StoreDamage:     b.ledger.Damage(),
	}
	for _, r := range b.cfg.Routes {
		info.Cluster = append(info.Cluster, r)
	}
	if jsz, err := b.ns.Jsz(nil); err == nil && jsz.Meta != nil && len(b.cfg.Routes) > 0 {
		info.JetStreamLeader = jsz.Meta.Leader
	}
	return info, nil
}

func (a *api) listNodes(ctx context.Context, _ micro.Request) (any, error) {
	nodes, _, err := a.nodesNow(ctx)
	return nodes, err
}

// nodesNow reads the nodes bucket: every node with Alive and HeartbeatAge
// set from the time its last heartbeat was stored (the server's clock, not
// the node's), and the live ones by id. A node is alive while that age is
// within its own node timeout (plus a second for the servers' clocks).
func (a *api) nodesNow(ctx context.Context) ([]clientsdk.Node, map[string]clientsdk.Node, error) {
	entries, err := readEntries(ctx, a.nodes)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	nodes := []clientsdk.Node{}
	live := map[string]clientsdk.Node{}
	for _, e := range entries {
		var n clientsdk.Node
		if json.Unmarshal(e.Value(), &n) != nil {
			continue
		}
		timeout := n.Timeout.D()
		if timeout <= 0 {
			timeout = 3 * time.Second
		}
		created := e.Created()
		if now.Sub(created) > timeout+time.Second {
			created = a.latestHeartbeat(ctx, e)
		}
		age := max(now.Sub(created), 0)
		n.HeartbeatAge, n.Alive = clientsdk.Duration(age), age <= timeout+time.Second
		nodes = append(nodes, n)
		if n.Alive {
			live[n.ID] = n
		}
	}
	return nodes, live, nil
}

// latestHeartbeat returns when node entry e's last heartbeat was stored, read
// again by key before a node is called dead: a watch created while the
// cluster re-elects a stream leader (a server just died or came back) can
// deliver entries older than what the stream holds.
func (a *api) latestHeartbeat(ctx context.Context, e jetstream.KeyValueEntry) time.Time {
	again, err := a.nodes.Get(ctx, e.Key())
	if err != nil || !again.Created().After(e.Created()) {
		return e.Created()
	}
	return again.Created()
}

// getSpec reads an app's spec; *Error 404 when there is none.
func (a *api) getSpec(ctx context.Context, name string) (*clientsdk.AppSpec, uint64, error) {
	e, err := a.apps.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, clientsdk.Errorf(404, "NotFound", "no app named %q; `dartup list` shows the apps", name)
	}
	if err != nil {
		return nil, 0, err
	}
	var s clientsdk.AppSpec
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, 0, fmt.Errorf("app %s has a corrupt spec: %w", name, err)
	}
	s.Revision = e.Revision()
	return &s, e.Revision(), nil
}

// readAll reads every value of a bucket into a slice, skipping undecodable entries.
func readAll[T any](ctx context.Context, kv jetstream.KeyValue) ([]T, error) {
	entries, err := readEntries(ctx, kv)
	if err != nil {
		return nil, err
	}
	var out []T
	for _, e := range entries {
		var v T
		if json.Unmarshal(e.Value(), &v) == nil {
			out = append(out, v)
		}
	}
	return out, nil
}

// readEntries reads every current entry of a bucket.
func readEntries(ctx context.Context, kv jetstream.KeyValue) ([]jetstream.KeyValueEntry, error) {
	return watchEntries(ctx, kv, jetstream.IgnoreDeletes())
}

// watchEntries reads what a watch of the whole bucket with opts delivers
// before it is up to date.
func watchEntries(ctx context.Context, kv jetstream.KeyValue, opts ...jetstream.WatchOpt) ([]jetstream.KeyValueEntry, error) {
	w, err := kv.WatchAll(ctx, opts...)
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// readSpecs reads every app spec with its revision.
func (a *api) readSpecs(ctx context.Context) ([]clientsdk.AppSpec, error) {
	entries, err := readEntries(ctx, a.apps)
	if err != nil {
		return nil, err
	}
	var out []clientsdk.AppSpec
	for _, e := range entries {
		var s clientsdk.AppSpec
		if json.Unmarshal(e.Value(), &s) == nil {
			s.Revision = e.Revision()
			out = append(out, s.WithDefaults())
		}
	}
	return out, nil
}

// summarize reads what Summarize needs about app spec (its statuses and the
// live nodes) and returns its summary.
func (a *api) summarize(ctx context.Context, spec clientsdk.AppSpec) (clientsdk.AppSummary, error) {
	st, err := a.statusesOf(ctx, spec.Name)
	if err != nil {
		return clientsdk.AppSummary{}, err
	}
	_, live, err := a.nodesNow(ctx)
	if err != nil {
		return clientsdk.AppSummary{}, err
	}
	return Summarize(spec.WithDefaults(), st, live, time.Now()), nil
}

func (a *api) list(ctx context.Context, _ micro.Request) (any, error) {
	specs, err := a.readSpecs(ctx)
	if err != nil {
		return nil, err
	}
	statuses, err := readAll[clientsdk.InstanceStatus](ctx, a.status)
	if err != nil {
		return nil, err
	}
	_, live, err := a.nodesNow(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	byApp := map[string][]clientsdk.InstanceStatus{}
	for _, s := range statuses {
		byApp[s.App] = append(byApp[s.App], s)
	}
	res := clientsdk.ListResponse{Apps: []clientsdk.AppSummary{}}
	for _, s := range specs {
		res.Apps = append(res.Apps, Summarize(s, byApp[s.Name], live, now))
	}
	slices.SortFunc(res.Apps, func(x, y clientsdk.AppSummary) int { return strings.Compare(x.Name, y.Name) })
	return res, nil
}

func (a *api) statusesOf(ctx context.Context, app string) ([]clientsdk.InstanceStatus, error) {
	all, err := readAll[clientsdk.InstanceStatus](ctx, a.status)
	if err != nil {
		return nil, err
	}
	var out []clientsdk.InstanceStatus
	for _, s := range all {
		if s.App == app {
			out = append(out, s)
		}
	}
	return out, nil
}

func (a *api) describe(ctx context.Context, req micro.Request) (any, error) {
	name, err := decodeName(req)
	if err != nil {
		return nil, err
	}
	spec, _, err := a.getSpec(ctx, name)
	if err != nil {
		return nil, err
	}
	sum, err := a.summarize(ctx, *spec)
	if err != nil {
		return nil, err
	}
	info := &clientsdk.AppInfo{Spec: *spec, Summary: sum}
	if revs, err := a.readRevisions(ctx, name); err == nil {
		info.Versions = keptVersions(keptSpecs(revs, *spec))
	}
	info.Events = a.recentEvents(ctx, name, 20)
	info.Schedules = a.appSchedules(ctx, *spec)
	if spec.Kind == clientsdk.KindLambda && a.b.async != nil {
		if info.Async, err = a.b.async.stats(ctx, name); err != nil {
			a.logger.Debug("describe: no async stats", "app", name, "err", err)
		}
	}
	return info, nil
}

// keptVersions lists the versions an app keeps (newest first, as
// keptSpecs returns them) for info: the ones `dartup rollback` can go to.
func keptVersions(kept []clientsdk.AppSpec) []clientsdk.AppVersion {
	out := make([]clientsdk.AppVersion, 0, len(kept))
	for _, s := range kept {
		v := clientsdk.AppVersion{Version: s.Version, Revision: s.Revision, PushedAt: s.PushedAt, PushedBy: s.PushedBy}
		if s.Artifact != nil {
			v.SHA256 = s.Artifact.SHA256
		}
		out = append(out, v)
	}
	return out
}

// recentEvents returns up to n of the app's most recent events (last 24 h).
func (a *api) recentEvents(ctx context.Context, app string, n int) []clientsdk.Event {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now().Add(-24 * time.Hour)
	c, err := a.b.js.OrderedConsumer(ctx, clientsdk.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{clientsdk.EventFilter(app)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
		// Gone soon after this read: describe runs every 100 ms while a
		// push waits, and the server's consumers are limited.
		InactiveThreshold: 2 * time.Second,
	})
	if err != nil {
		return nil
	}
	var ring []clientsdk.Event
	for {
		ci := c.CachedInfo()
		if ci != nil && ci.NumPending == 0 && len(ring) > 0 {
			break
		}
		batch, err := c.FetchNoWait(500)
		if err != nil {
			break
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var e clientsdk.Event
			if json.Unmarshal(m.Data(), &e) == nil {
				ring = append(ring, e)
				if len(ring) > n {
					ring = ring[1:]
				}
			}
		}
		if got == 0 {
			break
		}
	}
	return ring
}

// publishEvent records a lifecycle event; failures are logged, not returned.
func (a *api) publishEvent(ctx context.Context, app string, kind clientsdk.EventKind, msg string) {
	e := clientsdk.Event{App: app, Kind: kind, Instance: -1, Node: a.b.cfg.ServerName, Message: msg, Time: time.Now().UTC()}
	b, _ := json.Marshal(e)
	if _, err := a.b.js.Publish(ctx, clientsdk.EventSubject(app, kind), b); err != nil {
		a.logger.Warn("could not record event", "app", app, "kind", kind, "err", err)
	}
}
