package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// The state the metrics figure scrapes: metricsDaemons daemons of
// metricsInstances instances each (an idle `sleep`), and metricsLambdas
// lambdas invoked once (so that each has stats and a histogram).
const (
	metricsDaemons   = 3
	metricsInstances = 100
	metricsLambdas   = 50
)

// metricsScraper GETs /metrics every period while on, and keeps how long
// each scrape took.
type metricsScraper struct {
	url    string
	client *http.Client
	mu     sync.Mutex
	on     bool
	took   []time.Duration
	bytes  int
	err    error
}

// scrape GETs /metrics once and returns how long it took.
func (m *metricsScraper) scrape() (time.Duration, error) {
	t0 := time.Now()
	resp, err := m.client.Get(m.url)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	d := time.Since(t0)
	m.mu.Lock()
	m.bytes = int(n)
	m.mu.Unlock()
	return d, err
}

// run scrapes every period while on, until ctx ends.
func (m *metricsScraper) run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		on := m.on
		m.mu.Unlock()
		if !on {
			continue
		}
		d, err := m.scrape()
		m.mu.Lock()
		m.took = append(m.took, d)
		if err != nil && m.err == nil {
			m.err = err
		}
		m.mu.Unlock()
	}
}

func (m *metricsScraper) set(on bool) {
	m.mu.Lock()
	m.on = on
	m.mu.Unlock()
}

// figMetrics: what /metrics costs invocations when Prometheus scrapes it
// every second, and how long a scrape takes with 300 instances and 50
// lambdas (figure 11).
func (h *harness) figMetrics(ctx context.Context) []*Figure {
	cost := &Figure{ID: "metrics-cost", Num: 11, Title: "cost of /metrics scraped every second: warm invoke p50 and 32-caller throughput",
		Goal: "≤ 2% difference against the same run without scraping"}
	scrapeFig := &Figure{ID: "metrics-scrape", Num: 11, Title: fmt.Sprintf("/metrics scrape time with %d instances and %d lambdas", metricsDaemons*metricsInstances, metricsLambdas),
		Goal: "p50 < 50 ms"}
	figs := []*Figure{cost, scrapeFig}
	fail := func(err error) []*Figure {
		for _, f := range figs {
			f.notMeasured(err.Error())
		}
		return figs
	}
	s, c, err := h.lambdaServe(ctx, "metrics")
	if err != nil {
		return fail(err)
	}
	defer s.stop()
	defer c.Close()
	if err := h.metricsState(ctx, c); err != nil {
		return fail(err)
	}
	if err := pushLambda(ctx, c, clientsdk.AppSpec{Name: "echo", Lambda: &clientsdk.LambdaSpec{MaxWorkers: 4}}, h.bins.bootstrap, invokePayload); err != nil {
		return fail(err)
	}
	sc := &metricsScraper{url: s.httpURL + "/metrics", client: newHTTPClient()}
	if _, err := sc.scrape(); err != nil { // the first scrape starts the caches
		return fail(err)
	}
	if err := h.metricsScrapeRows(ctx, s, sc, scrapeFig); err != nil {
		return fail(err)
	}
	if err := h.metricsCostRows(ctx, s, sc, cost); err != nil {
		return fail(err)
	}
	return figs
}

// metricsState pushes the daemons and lambdas the scrapes report on and
// waits until every instance runs and every lambda has answered once.
func (h *harness) metricsState(ctx context.Context, c *clientsdk.Client) error {
	t0 := time.Now()
	for i := range metricsDaemons {
		spec := clientsdk.AppSpec{Name: fmt.Sprintf("idle%d", i), Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand,
			Command: []string{"/bin/sleep", "infinity"}, Instances: metricsInstances}
		if _, err := c.Push(ctx, spec, "", nil); err != nil {
			return fmt.Errorf("push %s: %w", spec.Name, err)
		}
	}
	zero := clientsdk.Duration(0)
	var names []string
	for i := range metricsLambdas {
		spec := clientsdk.AppSpec{Name: fmt.Sprintf("fn%02d", i), Kind: clientsdk.KindLambda, Lambda: &clientsdk.LambdaSpec{KeepWarm: &zero}}
		if _, err := c.Push(ctx, spec, h.bins.bootstrap, nil); err != nil {
			return fmt.Errorf("push %s: %w", spec.Name, err)
		}
		names = append(names, spec.Name)
	}
	if err := waitHosted(ctx, c, names); err != nil {
		return err
	}
	for _, name := range names {
		if err := invokeRetrying(ctx, c, name); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		apps, err := c.List(ctx)
		if err != nil {
			return err
		}
		running := 0
		for _, a := range apps {
			if a.Kind == clientsdk.KindDaemon {
				running += a.Running
			}
		}
		if running == metricsDaemons*metricsInstances {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d instances running after 3 minutes", running, metricsDaemons*metricsInstances)
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	h.logf("  %d instances running and %d lambdas invoked in %.1fs", metricsDaemons*metricsInstances, metricsLambdas, time.Since(t0).Seconds())
	return nil
}

// waitHosted waits until a node reports each lambda of names (its status
// entry), so that the measured invocations do not include deployments.
func waitHosted(ctx context.Context, c *clientsdk.Client, names []string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		apps, err := c.List(ctx)
		if err != nil {
			return err
		}
		hosted := map[string]bool{}
		for _, a := range apps {
			hosted[a.Name] = len(a.Instances) > 0
		}
		missing := 0
		for _, n := range names {
			if !hosted[n] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d lambdas not hosted after a minute", missing, len(names))
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// invokeRetrying invokes name once, trying again (up to 3 times) after an
// error or no answer in 5 s.
func invokeRetrying(ctx context.Context, c *clientsdk.Client, name string) error {
	var err error
	for range 3 {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = c.Invoke(ictx, name, invokePayload)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return fmt.Errorf("invoke %s: %w", name, err)
}

// metricsScrapeRows times scrapes of the idle server, one after another
// with a pause between them.
func (h *harness) metricsScrapeRows(ctx context.Context, s *serveProc, sc *metricsScraper, f *Figure) error {
	n := h.n(100, 30)
	// The idle server's own CPU (its runner samples 300 instances every
	// 5 s, heartbeats, …), to take away from the scrapes'.
	i0, it := readCPU(s.pid()), time.Now()
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return err
	}
	_, idleMS := cpuUse(i0, readCPU(s.pid()))
	idlePerSec := idleMS / time.Since(it).Seconds()
	var took []time.Duration
	c0, t0 := readCPU(s.pid()), time.Now()
	for range n {
		d, err := sc.scrape()
		if err != nil {
			return err
		}
		took = append(took, d)
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	_, serveMS := cpuUse(c0, readCPU(s.pid()))
	serveMS -= idlePerSec * time.Since(t0).Seconds()
	r := f.add(latencyRow(fmt.Sprintf("GET /metrics (gzip), %d instances, %d lambdas, idle server", metricsDaemons*metricsInstances, metricsLambdas+1), "dartup", "ms", took))
	r.Note = fmt.Sprintf("%d KB uncompressed; serve process %.1f ms CPU per scrape (10 ms ticks; its idle %.0f ms/s taken away)", sc.bytes/1000, serveMS/float64(n), idlePerSec)
	maxMS := r.Stats.Max
	f.judge(r.Median, 50, "ms")
	f.Verdict += fmt.Sprintf("; max %s", fmtVal(maxMS, "ms"))
	f.Note = fmt.Sprintf("`dartup serve` with its runner; %d daemons of %d instances each (`/bin/sleep infinity`, runtime command) and %d lambdas (the aws-lambda-go echo bootstrap, keep-warm 0, invoked once each: a status entry with stats and a histogram per lambda), plus the `echo` lambda of the cost figure. %d scrapes one after another, 50 ms apart, by a Go HTTP client asking for gzip as Prometheus does; the time is to the last byte of the body. The first scrape (not counted) starts the watches of the status and nodes buckets; later ones read memory.",
		metricsDaemons, metricsInstances, metricsLambdas, n)
	return nil
}

// costRound is what one round of the cost figure measured.
type costRound struct {
	warm    []time.Duration // one caller
	load    loadResult      // 32 callers
	serveMS float64         // serve process CPU during the round
	dur     time.Duration
}

// metricsCostRows measures the warm invoke p50 (one caller) and the
// 32-caller throughput in rounds with and without a scrape every second,
// in pairs whose order alternates (without-with, with-without, …) so that
// drift on the shared machine hits both alike; the ratio of each pair is
// taken, and their median reported.
func (h *harness) metricsCostRows(ctx context.Context, s *serveProc, sc *metricsScraper, f *Figure) error {
	conns, err := h.loadConns(s.natsURL, 4)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go sc.run(sctx, time.Second)
	call := func(nc *nats.Conn) error { return natsReq(nc, clientsdk.LambdaSubject("echo"), invokePayload) }
	if _, err := load32(ctx, conns, time.Second, call); err != nil { // warm-up: the 4 workers
		return err
	}
	pairs := h.n(16, 3)
	var rounds [2][]costRound // [without, with]
	for p := range pairs {
		for k := range 2 {
			with := (p + k) % 2 // 0,1 then 1,0, …
			sc.set(with == 1)
			r, err := costRoundRun(ctx, s, conns, call)
			if err != nil {
				return err
			}
			rounds[with] = append(rounds[with], r)
		}
	}
	sc.set(false)
	stop()
	sc.mu.Lock()
	scrapes, scrapeErr := append([]time.Duration(nil), sc.took...), sc.err
	sc.mu.Unlock()
	if scrapeErr != nil {
		return scrapeErr
	}
	p50, tput, cpu := pairedRatios(rounds[0], rounds[1])
	var rows [2][2]*Row
	for i, what := range []string{"no scraping", "/metrics scraped every second"} {
		var warm []time.Duration
		var lr loadResult
		var serveMS, secs float64
		for _, r := range rounds[i] {
			warm = append(warm, r.warm...)
			lr.lat, lr.elapsed = append(lr.lat, r.load.lat...), lr.elapsed+r.load.elapsed
			serveMS, secs = serveMS+r.serveMS, secs+r.dur.Seconds()
		}
		role := []string{"baseline", "dartup"}[i]
		rows[i][0] = f.add(latencyRow("warm invoke `lambda.echo`, one caller, "+what, role, "µs", warm))
		rows[i][1] = f.add(lr.row("32 callers, --max-workers 4, "+what, role))
		rows[i][1].Note = fmt.Sprintf("serve process %.0f ms CPU per second of the rounds", serveMS/secs)
	}
	for j := range 2 {
		rows[0][j].Short = "no scraping"
		rows[1][j].base, rows[1][j].RatioTo = rows[0][j], "no scraping"
	}
	rows[1][0].Ratio, rows[1][1].Ratio = p50, tput
	rows[1][0].Note = fmt.Sprintf("ratio: the median of %d paired rounds' p50 ratios (pooled: %.2f×)", pairs, rows[1][0].Median/rows[0][0].Median)
	rows[1][1].Note += fmt.Sprintf("; ratio: the median of %d paired rounds' throughput ratios (pooled: %.2f×)", pairs, rows[1][1].Throughput/rows[0][1].Throughput)
	sr := f.add(latencyRow("the scrapes of those rounds (under load)", "dartup", "ms", scrapes))
	sr.Note = "the scrape time while the invocations run"
	worst := max(p50-1, 1-tput, 0) * 100
	f.judge(worst, 2, "%")
	f.Verdict = fmt.Sprintf("p50 %.3f×, throughput %.3f× the rounds without scraping (medians of paired rounds); worse by %.1f%% (goal ≤ 2%%): %s", p50, tput, worst, f.Status)
	f.Note = fmt.Sprintf("The same server as the scrape-time figure (its %d instances and %d lambdas make each scrape as large as there). %d pairs of rounds, one with a scrape every second and one without, the order alternating from pair to pair; in each round one caller invokes in a closed loop for 1 s, then 32 goroutines over 4 connections for 1.5 s (4 workers). Each pair gives a ratio (with over without) of the p50 and of the throughput; the figure is their median, as the machine's other load moves both conditions by more than the effect measured. The serve process's CPU in the rounds with scraping was %.2f× that without (median of the pairs). The watches the first scrape started keep running in the rounds without scraping (a decode per status write; a lambda's status is written at most once a second).",
		metricsDaemons*metricsInstances, metricsLambdas, pairs, cpu)
	return nil
}

// costRoundRun runs one round: one caller for 1 s, then 32 for 1.5 s.
func costRoundRun(ctx context.Context, s *serveProc, conns []*nats.Conn, call func(*nats.Conn) error) (costRound, error) {
	c0, t0 := readCPU(s.pid()), time.Now()
	warm, err := timedLoop(ctx, time.Second, func() error { return call(conns[0]) })
	if err != nil {
		return costRound{}, err
	}
	lr, err := load32(ctx, conns, 1500*time.Millisecond, call)
	if err != nil {
		return costRound{}, err
	}
	_, ms := cpuUse(c0, readCPU(s.pid()))
	return costRound{warm: warm, load: lr, serveMS: ms, dur: time.Since(t0)}, nil
}

// pairedRatios returns the medians, over the pairs of rounds, of the ratio
// with/without of the one-caller p50, of the 32-caller throughput and of
// the serve process's CPU per second.
func pairedRatios(without, with []costRound) (p50, tput, cpu float64) {
	var rp, rt, rc []float64
	for i := range min(len(without), len(with)) {
		a, b := without[i], with[i]
		if sa, sb := summarize(micros(a.warm), false), summarize(micros(b.warm), false); sa.Median > 0 {
			rp = append(rp, sb.Median/sa.Median)
		}
		ta := float64(len(a.load.lat)) / a.load.elapsed.Seconds()
		tb := float64(len(b.load.lat)) / b.load.elapsed.Seconds()
		if ta > 0 {
			rt = append(rt, tb/ta)
		}
		if a.serveMS > 0 {
			rc = append(rc, (b.serveMS/b.dur.Seconds())/(a.serveMS/a.dur.Seconds()))
		}
	}
	return summarize(rp, false).Median, summarize(rt, false).Median, summarize(rc, false).Median
}

// timedLoop calls fn in a closed loop for d and returns each call's time.
func timedLoop(ctx context.Context, d time.Duration, fn func() error) ([]time.Duration, error) {
	var out []time.Duration
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		t0 := time.Now()
		if err := fn(); err != nil {
			return out, err
		}
		out = append(out, time.Since(t0))
	}
	return out, ctx.Err()
}

// load32 runs 32 callers over conns for d.
func load32(ctx context.Context, conns []*nats.Conn, d time.Duration, call func(*nats.Conn) error) (loadResult, error) {
	return load(ctx, 32, d, func(i int) error { return call(conns[i%len(conns)]) })
}
