package broker

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// The state metrics (docs/metrics.md). Instances are labelled app, index
// (not "instance", which Prometheus gives the scraped target) and node.
var (
	instanceLabels = []string{"app", "index", "node"}
	lambdaLabels   = []string{"app", "node"}

	descAppInfo        = prometheus.NewDesc("dartup_app_info", "One series per app, with its kind (daemon or lambda).", []string{"app", "kind"}, nil)
	descAppDesired     = prometheus.NewDesc("dartup_app_desired_instances", "Instances a daemon should run (0 when killed).", []string{"app"}, nil)
	descAppStopped     = prometheus.NewDesc("dartup_app_stopped", "1 when the app is killed (stopped on purpose), else 0.", []string{"app"}, nil)
	descInstanceState  = prometheus.NewDesc("dartup_instance_state", "1 for the current state of a daemon instance (label state), as `dartup list` shows it (lost, pending included).", append(instanceLabels[:3:3], "state"), nil)
	descInstanceReady  = prometheus.NewDesc("dartup_instance_ready", "1 when the instance passed its readiness probe and the gateways route to it.", instanceLabels, nil)
	descRestarts       = prometheus.NewDesc("dartup_instance_restarts_total", "Restarts of the instance since its runner took it.", instanceLabels, nil)
	descExits          = prometheus.NewDesc("dartup_instance_exits_total", "Worker exits of the instance by exit code (0-255) or signal name, since its runner took it.", append(instanceLabels[:3:3], "code"), nil)
	descUptime         = prometheus.NewDesc("dartup_instance_uptime_seconds", "How long the instance's running worker has run.", instanceLabels, nil)
	descCPU            = prometheus.NewDesc("dartup_instance_cpu_seconds_total", "User and system CPU time of the instance's current worker (sampled every 5 s; starts from 0 with each new worker).", instanceLabels, nil)
	descRSS            = prometheus.NewDesc("dartup_instance_resident_memory_bytes", "Resident memory of the instance's worker (sampled every 5 s).", instanceLabels, nil)
	descInvocations    = prometheus.NewDesc("dartup_lambda_invocations_total", "Invocations of a lambda on a node by result: ok, error (timeouts excepted) or timeout. Throttled requests are not invocations.", append(lambdaLabels[:2:2], "result"), nil)
	descColdStarts     = prometheus.NewDesc("dartup_lambda_cold_starts_total", "Workers a lambda started on a node for a request that found none warm.", lambdaLabels, nil)
	descThrottles      = prometheus.NewDesc("dartup_lambda_throttles_total", "Requests refused with 429 (workers and queue full) on a node.", lambdaLabels, nil)
	descDuration       = prometheus.NewDesc("dartup_lambda_duration_seconds", "Time from a lambda request's arrival on a node to its answer.", lambdaLabels, nil)
	descWarm           = prometheus.NewDesc("dartup_lambda_warm_workers", "Live workers of a lambda on a node (0 when the node is not alive).", lambdaLabels, nil)
	descBusy           = prometheus.NewDesc("dartup_lambda_busy_workers", "Workers of a lambda on a node running an invocation.", lambdaLabels, nil)
	descQueued         = prometheus.NewDesc("dartup_lambda_queued_requests", "Requests waiting for a worker of a lambda on a node.", lambdaLabels, nil)
	descAsyncBacklog   = prometheus.NewDesc("dartup_lambda_async_backlog", "Async events of a lambda stored and not completed yet (cluster-wide).", []string{"app"}, nil)
	descDeadLetters    = prometheus.NewDesc("dartup_lambda_dead_letters", "Dead letters of a lambda (cluster-wide).", []string{"app"}, nil)
	descNodeHeartbeat  = prometheus.NewDesc("dartup_node_heartbeat_age_seconds", "How long ago the node's last heartbeat was stored.", []string{"node"}, nil)
	descNodeAlive      = prometheus.NewDesc("dartup_node_alive", "1 while the node's heartbeats are within its node timeout.", []string{"node"}, nil)
	descNodeDraining   = prometheus.NewDesc("dartup_node_draining", "1 when the node is draining.", []string{"node"}, nil)
	descNodeLoad1      = prometheus.NewDesc("dartup_node_load1", "The node's one-minute load average, from its last heartbeat.", []string{"node"}, nil)
	stateCollectorDesc = []*prometheus.Desc{descAppInfo, descAppDesired, descAppStopped, descInstanceState, descInstanceReady,
		descRestarts, descExits, descUptime, descCPU, descRSS, descInvocations, descColdStarts, descThrottles, descDuration,
		descWarm, descBusy, descQueued, descAsyncBacklog, descDeadLetters, descNodeHeartbeat, descNodeAlive, descNodeDraining, descNodeLoad1}
)

// stateCollector makes the state metrics at scrape time from the caches:
// the router's apps, and the watched status and nodes buckets.
type stateCollector struct {
	m     *metrics
	cache seriesCache
}

// seriesCache keeps the series made for each instance and lambda entry
// from one scrape to the next: an entry that did not change (the same
// write, the same truth) gives the same const metrics, made once. This
// halves what a scrape allocates.
type seriesCache struct {
	mu         sync.Mutex // held for a whole Collect
	prev, next map[seriesKey][]prometheus.Metric
}

// seriesKey identifies what an entry's series are made of.
type seriesKey struct {
	app, node    string
	index        int
	state        clientsdk.InstanceState
	ready, alive bool
	written      int64 // the entry's UpdatedAt: each write has its own
}

// series returns k's series: those of the scrape before, or made now (an
// entry without a write time is made every time).
func (c *seriesCache) series(k seriesKey, build func() []prometheus.Metric) []prometheus.Metric {
	if k.written <= 0 {
		return build()
	}
	m, ok := c.prev[k]
	if !ok {
		m = build()
	}
	c.next[k] = m
	return m
}

// Describe sends every state metric's description.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range stateCollectorDesc {
		ch <- d
	}
}

// Collect sends the state metrics of every app, instance, lambda and node.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.m.b
	if b.router == nil {
		return
	}
	c.cache.mu.Lock()
	c.cache.next = map[seriesKey][]prometheus.Metric{}
	defer func() {
		c.cache.prev, c.cache.next = c.cache.next, nil
		c.cache.mu.Unlock()
	}()
	now := time.Now()
	specs := b.router.specs()
	nodes := c.m.state.nodes.values()
	live := map[string]clientsdk.Node{}
	for _, n := range nodes {
		age, alive := heartbeatAge(n, now)
		if alive {
			live[n.node.ID] = n.node
		}
		collectNode(ch, n.node, age, alive)
	}
	daemons, lambdaNodes := map[string][]clientsdk.InstanceStatus{}, map[string][]clientsdk.InstanceStatus{}
	for _, st := range c.m.state.status.values() {
		if st.Lambda != nil {
			lambdaNodes[st.App] = append(lambdaNodes[st.App], st)
		} else {
			daemons[st.App] = append(daemons[st.App], st)
		}
	}
	var lambdas []string
	for _, s := range specs {
		ch <- prometheus.MustNewConstMetric(descAppInfo, prometheus.GaugeValue, 1, s.Name, string(s.Kind))
		ch <- prometheus.MustNewConstMetric(descAppStopped, prometheus.GaugeValue, boolValue(s.Stopped), s.Name)
		if s.Kind == clientsdk.KindLambda {
			lambdas = append(lambdas, s.Name)
			for _, st := range lambdaNodes[s.Name] {
				_, alive := live[st.Node]
				k := seriesKey{app: st.App, node: st.Node, index: st.Instance, alive: alive, written: st.UpdatedAt.UnixNano()}
				send(ch, c.cache.series(k, func() []prometheus.Metric { return lambdaSeries(st, alive) }))
			}
			continue
		}
		sum := summarizeDaemon(s, daemons[s.Name], live, now)
		ch <- prometheus.MustNewConstMetric(descAppDesired, prometheus.GaugeValue, float64(sum.Desired), s.Name)
		for _, st := range sum.Instances {
			k := seriesKey{app: st.App, node: st.Node, index: st.Instance, state: st.State, ready: st.Ready, written: st.UpdatedAt.UnixNano()}
			send(ch, c.cache.series(k, func() []prometheus.Metric { return instanceSeries(st) }))
			if st.State == clientsdk.StateRunning && !st.StartedAt.IsZero() {
				ch <- prometheus.MustNewConstMetric(descUptime, prometheus.GaugeValue, max(now.Sub(st.StartedAt), 0).Seconds(),
					st.App, strconv.Itoa(st.Instance), st.Node)
			}
		}
	}
	c.collectAsync(ch, lambdas)
}

// heartbeatAge returns how long ago n's heartbeat was stored, and whether
// that is within its node timeout (plus a second for the servers' clocks),
// as nodesNow judges it.
func heartbeatAge(n nodeSeen, now time.Time) (time.Duration, bool) {
	timeout := n.node.Timeout.D()
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	age := max(now.Sub(n.at), 0)
	return age, age <= timeout+time.Second
}

func collectNode(ch chan<- prometheus.Metric, n clientsdk.Node, age time.Duration, alive bool) {
	ch <- prometheus.MustNewConstMetric(descNodeHeartbeat, prometheus.GaugeValue, age.Seconds(), n.ID)
	ch <- prometheus.MustNewConstMetric(descNodeAlive, prometheus.GaugeValue, boolValue(alive), n.ID)
	ch <- prometheus.MustNewConstMetric(descNodeDraining, prometheus.GaugeValue, boolValue(n.Draining), n.ID)
	ch <- prometheus.MustNewConstMetric(descNodeLoad1, prometheus.GaugeValue, n.Load1, n.ID)
}

func send(ch chan<- prometheus.Metric, ms []prometheus.Metric) {
	for _, m := range ms {
		ch <- m
	}
}

// instanceSeries makes one daemon instance's series (its uptime aside,
// which changes at every scrape).
func instanceSeries(st clientsdk.InstanceStatus) []prometheus.Metric {
	lv := []string{st.App, strconv.Itoa(st.Instance), st.Node}
	out := make([]prometheus.Metric, 0, 6+len(st.Exits))
	add := func(d *prometheus.Desc, t prometheus.ValueType, v float64, extra ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, t, v, append(lv, extra...)...))
	}
	add(descInstanceState, prometheus.GaugeValue, 1, stateLabel(st.State))
	add(descInstanceReady, prometheus.GaugeValue, boolValue(st.Ready))
	add(descRestarts, prometheus.CounterValue, float64(st.Restarts))
	for code, n := range exitCounts(st.Exits) {
		add(descExits, prometheus.CounterValue, float64(n), code)
	}
	add(descCPU, prometheus.CounterValue, st.CPUSeconds)
	add(descRSS, prometheus.GaugeValue, float64(st.MemoryBytes))
	return out
}

// lambdaSeries makes one lambda's series on one node; its workers count
// as none when the node is not alive.
func lambdaSeries(st clientsdk.InstanceStatus, alive bool) []prometheus.Metric {
	l := st.Lambda
	var out []prometheus.Metric
	counter := func(d *prometheus.Desc, v uint64, extra ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{st.App, st.Node}, extra...)...))
	}
	gauge := func(d *prometheus.Desc, v int) {
		if !alive {
			v = 0
		}
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), st.App, st.Node))
	}
	ok, failed, timeouts := invocationResults(*l)
	counter(descInvocations, ok, "ok")
	counter(descInvocations, failed, "error")
	counter(descInvocations, timeouts, "timeout")
	counter(descColdStarts, l.ColdStarts)
	counter(descThrottles, l.Throttled)
	if len(l.DurationBuckets) == len(clientsdk.LambdaDurationBounds) {
		buckets := make(map[float64]uint64, len(l.DurationBuckets))
		for i, n := range l.DurationBuckets {
			buckets[clientsdk.LambdaDurationBounds[i]] = n
		}
		count := max(l.Invocations, l.DurationBuckets[len(l.DurationBuckets)-1])
		out = append(out, prometheus.MustNewConstHistogram(descDuration, count, l.DurationSum, buckets, st.App, st.Node))
	}
	gauge(descWarm, st.WarmWorkers)
	gauge(descBusy, st.BusyWorkers)
	gauge(descQueued, st.QueuedRequests)
	return out
}

// invocationResults splits a lambda's invocations into those that
// succeeded, failed (other than by a timeout) and timed out.
func invocationResults(l clientsdk.LambdaStats) (ok, failed, timeouts uint64) {
	errs := min(l.Errors, l.Invocations)
	timeouts = min(l.Timeouts, errs)
	return l.Invocations - errs, errs - timeouts, timeouts
}

// collectAsync sends each lambda's async backlog and dead letters: one
// stream info request each for the async and the dead-letter streams.
func (c *stateCollector) collectAsync(ch chan<- prometheus.Metric, lambdas []string) {
	d := c.m.b.async
	if d == nil || len(lambdas) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, x := range []struct {
		s      jetstream.Stream
		prefix string
		desc   *prometheus.Desc
	}{{d.stream, clientsdk.AsyncPrefix, descAsyncBacklog}, {d.dlq, clientsdk.DLQPrefix, descDeadLetters}} {
		info, err := x.s.Info(ctx, jetstream.WithSubjectFilter(x.prefix+".*"))
		if err != nil {
			c.m.logger.Debug("scrape: cannot read a stream's subjects", "prefix", x.prefix, "err", err)
			continue
		}
		for _, name := range lambdas {
			ch <- prometheus.MustNewConstMetric(x.desc, prometheus.GaugeValue, float64(info.State.Subjects[x.prefix+"."+name]), name)
		}
	}
}

// knownStates are the values of the state label; anything else is "unknown".
var knownStates = map[clientsdk.InstanceState]bool{
	clientsdk.StateStarting: true, clientsdk.StateRunning: true, clientsdk.StateBackoff: true, clientsdk.StateStopping: true,
	clientsdk.StateStopped: true, clientsdk.StateExited: true, clientsdk.StateErrored: true, clientsdk.StateLost: true, clientsdk.StatePending: true,
}

// stateLabel bounds the state label to the known states.
func stateLabel(s clientsdk.InstanceState) string {
	if knownStates[s] {
		return string(s)
	}
	return "unknown"
}

// exitCounts returns exits by code label: a runner's kinds ("0".."255", a
// signal name, "unknown", "other"), with anything else counted as "other",
// so that the label takes a bounded set of values.
func exitCounts(exits map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(exits))
	for k, n := range exits {
		out[exitLabel(k)] += n
	}
	return out
}

// exitLabel is k when it is an exit code from 0 to 255, a Linux signal
// name ("SIGKILL", or "signal 34" for one without a name), "unknown" or
// "other"; "other" for anything else.
func exitLabel(k string) string {
	if n, err := strconv.Atoi(k); err == nil && n >= 0 && n <= 255 && strconv.Itoa(n) == k {
		return k
	}
	if k == "unknown" || k == "other" {
		return k
	}
	if rest, ok := strings.CutPrefix(k, "signal "); ok {
		if n, err := strconv.Atoi(rest); err == nil && n > 0 && n < 128 && strconv.Itoa(n) == rest {
			return k
		}
		return "other"
	}
	if signalNames[k] {
		return k
	}
	return "other"
}

// signalNames are Linux's signal names, the values exitLabel keeps.
var signalNames = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGUSR1 SIGSEGV
		SIGUSR2 SIGPIPE SIGALRM SIGTERM SIGSTKFLT SIGCHLD SIGCONT SIGSTOP SIGTSTP SIGTTIN SIGTTOU SIGURG SIGXCPU SIGXFSZ
		SIGVTALRM SIGPROF SIGWINCH SIGIO SIGPWR SIGSYS`) {
		m[n] = true
	}
	return m
}()

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
