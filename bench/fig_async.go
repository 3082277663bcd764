package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// asyncProbe collects the on-success outcomes of the async figure's
// function: each event carries its index, each outcome says when it
// arrived.
type asyncProbe struct {
	mu   sync.Mutex
	sent []time.Time
	done []time.Time
	n    atomic.Int64
	wake chan struct{}
}

func newAsyncProbe(n int) *asyncProbe {
	return &asyncProbe{sent: make([]time.Time, n), done: make([]time.Time, n), wake: make(chan struct{}, 1)}
}

// reset readies the probe for n more events.
func (p *asyncProbe) reset(n int) {
	p.mu.Lock()
	p.sent, p.done = make([]time.Time, n), make([]time.Time, n)
	p.mu.Unlock()
	p.n.Store(0)
}

func (p *asyncProbe) onOutcome(m *nats.Msg) {
	now := time.Now()
	var o struct {
		Event struct {
			I int `json:"i"`
		} `json:"event"`
	}
	if json.Unmarshal(m.Data, &o) != nil {
		return
	}
	p.mu.Lock()
	if i := o.Event.I; i >= 0 && i < len(p.done) && p.done[i].IsZero() {
		p.done[i] = now
		p.n.Add(1)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *asyncProbe) markSent(i int, t time.Time) {
	p.mu.Lock()
	p.sent[i] = t
	p.mu.Unlock()
}

// wait waits until n outcomes arrived or timeout passes.
func (p *asyncProbe) wait(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for p.n.Load() < int64(n) {
		select {
		case <-p.wake:
		case <-deadline:
			return fmt.Errorf("%d of %d async events completed within %s", p.n.Load(), n, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// latencies returns publish → completion of every completed event, and the
// time of the last completion.
func (p *asyncProbe) latencies() ([]time.Duration, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Duration
	var last time.Time
	for i, d := range p.done {
		if !d.IsZero() && !p.sent[i].IsZero() {
			out = append(out, d.Sub(p.sent[i]))
			if d.After(last) {
				last = d
			}
		}
	}
	return out, last
}

// figAsync: async invocations with 4 workers against synchronous calls of
// the same function in the same run (figure 10).
func (h *harness) figAsync(ctx context.Context) []*Figure {
	f := &Figure{ID: "async", Num: 10, Title: "async invocations, 4 workers: accepted and completed vs synchronous"}
	fail := func(err error) []*Figure {
		f.notMeasured(err.Error())
		f.add(unmeasured("dartup async invocations of `ev`", "dartup", err.Error()))
		return []*Figure{f}
	}
	s, c, err := h.lambdaServe(ctx, "async")
	if err != nil {
		return fail(err)
	}
	defer s.stop()
	defer c.Close()
	const dest = "bench.ev.done"
	spec := clientsdk.AppSpec{Name: "ev", Lambda: &clientsdk.LambdaSpec{MaxWorkers: 4, Async: &clientsdk.AsyncSpec{OnSuccess: dest}}}
	if err := pushLambda(ctx, c, spec, h.bins.bootstrap, invokePayload); err != nil {
		return fail(err)
	}
	nc, err := nats.Connect(s.natsURL, nats.Name("bench-async-outcomes"))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	events := h.n(5000, 1000)
	probe := newAsyncProbe(events)
	if _, err := nc.Subscribe(dest, probe.onOutcome); err != nil {
		return fail(err)
	}
	if err := nc.Flush(); err != nil {
		return fail(err)
	}
	conns, err := h.loadConns(s.natsURL, 4)
	if err != nil {
		return fail(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	const callers = 16
	dur := time.Duration(h.n(4000, 1000)) * time.Millisecond
	syncRow, err := h.asyncSyncRow(ctx, s, conns, callers, dur)
	if err != nil {
		return fail(err)
	}
	f.add(syncRow)
	c1 := readCPU(s.pid())
	burst, err := h.asyncBurst(ctx, c, probe, events, callers)
	if err != nil {
		return fail(err)
	}
	c2 := readCPU(s.pid())
	_, asyncServe := cpuUse(c1, c2)
	completed := f.add(burst.completed)
	accepted := f.add(burst.accepted)
	completed.Note = fmt.Sprintf("serve process %.0f µs CPU per event (store, dispatch, call, ack, outcome)", 1000*asyncServe/float64(events))
	for _, r := range []*Row{accepted, completed} {
		r.base, r.RatioTo, r.Ratio = syncRow, "sync", r.Throughput/syncRow.Throughput
	}
	backlog, err := h.asyncBacklog(ctx, c, probe, events)
	if err != nil {
		return fail(err)
	}
	backlog.base, backlog.RatioTo, backlog.Ratio = syncRow, "sync", backlog.Throughput/syncRow.Throughput
	f.add(backlog)
	single, err := h.asyncOneByOne(ctx, c, probe, h.n(300, 100))
	if err != nil {
		return fail(err)
	}
	one := f.add(latencyRow("async, one event at a time: publish → completion (on-success outcome received)", "dartup", "ms", single))
	sync1 := f.add(latencyRow("synchronous `lambda.ev`, one call at a time", "baseline", "ms", h.syncOneByOne(ctx, conns[0], h.n(300, 100))))
	ratio(one, sync1)
	f.Status, f.Verdict = StatusInfo, fmt.Sprintf("%.0f events/s completed while stored (%.2f× synchronous %.0f req/s), %.0f from a backlog, %.0f accepted; one at a time publish → completion p50 %s, p99 %s",
		completed.Throughput, completed.Ratio, syncRow.Throughput, backlog.Throughput, accepted.Throughput, fmtVal(one.Median, "ms"), fmtVal(one.P99, "ms"))
	f.Note = asyncNote(callers, dur, events)
	return []*Figure{f}
}

// asyncSyncRow calls the function synchronously from callers goroutines
// over conns for dur, after a warm-up that starts its 4 workers.
func (h *harness) asyncSyncRow(ctx context.Context, s *serveProc, conns []*nats.Conn, callers int, dur time.Duration) (*Row, error) {
	syncCall := func(i int) error { return natsReq(conns[i%len(conns)], clientsdk.LambdaSubject("ev"), invokePayload) }
	if _, err := load(ctx, callers, time.Second, syncCall); err != nil {
		return nil, err
	}
	c0 := readCPU(s.pid())
	sr, err := load(ctx, callers, dur, syncCall)
	if err != nil {
		return nil, err
	}
	_, serveMS := cpuUse(c0, readCPU(s.pid()))
	r := sr.row(fmt.Sprintf("synchronous `lambda.ev`, %d callers, --max-workers 4 (the same function, same run)", callers), "baseline")
	r.Short = "sync"
	r.Note = fmt.Sprintf("serve process %.0f µs CPU per call", 1000*serveMS/float64(max(len(sr.lat), 1)))
	return r, nil
}

// asyncNote says how figure 10 is measured.
func asyncNote(callers int, dur time.Duration, events int) string {
	return fmt.Sprintf("The same aws-lambda-go echo bootstrap, --max-workers 4, on one `dartup serve` with its runner, called first synchronously (%d goroutines over 4 connections, closed loop for %s after a warm-up), then asynchronously: %d events stored with `clientsdk.Client.InvokeAsync` by %d goroutines as fast as JetStream acknowledges them (accepted: events/s over that burst; latency: each store's round trip), while the server's dispatcher hands them to the 4 workers (completed: events/s from the first store to the last completion; latency: store started → on-success outcome received, so it includes the wait behind the burst). An event is complete when the subscriber of the lambda's `--on-success` subject receives its outcome; the dispatcher publishes it right after acknowledging the event. The backlog row stores the events first, with the lambda killed, then starts it: what the dispatcher alone sustains. The last rows send one event at a time and wait for its outcome, against one synchronous call at a time: what an async event costs on top of a call (a JetStream store with a disk sync, a pull, an acknowledgement, an outcome).",
		callers, dur, events, callers)
}

// loadConns opens n NATS connections for load.
func (h *harness) loadConns(url string, n int) ([]*nats.Conn, error) {
	var out []*nats.Conn
	for i := range n {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench-load-%d", i)))
		if err != nil {
			for _, c := range out {
				c.Close()
			}
			return nil, err
		}
		out = append(out, nc)
	}
	return out, nil
}

// asyncBurstRows are the rows of a burst of async events.
type asyncBurstRows struct{ accepted, completed *Row }

// asyncBurst stores events async events from publishers goroutines as
// fast as they are acknowledged, then waits for their outcomes.
func (h *harness) asyncBurst(ctx context.Context, c *clientsdk.Client, probe *asyncProbe, events, publishers int) (asyncBurstRows, error) {
	probe.reset(events)
	var next atomic.Int64
	var mu sync.Mutex
	var stores []time.Duration
	var first error
	var wg sync.WaitGroup
	start := time.Now()
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= events {
					break
				}
				t0 := time.Now()
				probe.markSent(i, t0)
				if _, err := c.InvokeAsync(ctx, "ev", []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			stores = append(stores, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	acceptedIn := time.Since(start)
	if first != nil {
		return asyncBurstRows{}, first
	}
	if err := probe.wait(ctx, events, 5*time.Minute); err != nil {
		return asyncBurstRows{}, err
	}
	lat, last := probe.latencies()
	acc := latencyRow(fmt.Sprintf("async accepted: %d events stored by `InvokeAsync` from %d goroutines (store round trip)", events, publishers), "dartup", "ms", stores)
	acc.Throughput = float64(events) / acceptedIn.Seconds()
	comp := latencyRow(fmt.Sprintf("async completed: the same %d events run by 4 workers (store → outcome, behind the burst)", events), "dartup", "ms", lat)
	comp.Throughput = float64(events) / last.Sub(start).Seconds()
	return asyncBurstRows{accepted: acc, completed: comp}, nil
}

// asyncBacklog stores events while the lambda is killed, starts it, and
// measures how fast the dispatcher alone runs the backlog (events/s from
// the first outcome to the last).
func (h *harness) asyncBacklog(ctx context.Context, c *clientsdk.Client, probe *asyncProbe, events int) (*Row, error) {
	if _, err := c.Kill(ctx, "ev"); err != nil {
		return nil, err
	}
	if _, err := c.WaitStopped(ctx, "ev"); err != nil {
		return nil, err
	}
	probe.reset(events)
	for i := range events {
		probe.markSent(i, time.Now())
		if _, err := c.InvokeAsync(ctx, "ev", []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	if _, err := c.Start(ctx, "ev"); err != nil {
		return nil, err
	}
	if err := probe.wait(ctx, events, 5*time.Minute); err != nil {
		return nil, err
	}
	first, last := probe.span()
	return &Row{Label: fmt.Sprintf("async completed from a backlog: %d events stored while the lambda was killed, run after `dartup start` (the dispatcher alone)", events),
		Role: "dartup", Measured: true, Unit: "ms", N: events, Throughput: float64(events-1) / last.Sub(first).Seconds(),
		Note: fmt.Sprintf("from the first outcome to the last; the first came %s after the start request (deploy, the workers' cold starts)", first.Sub(start).Round(time.Millisecond))}, nil
}

// span returns the first and the last completion.
func (p *asyncProbe) span() (first, last time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.done {
		if d.IsZero() {
			continue
		}
		if first.IsZero() || d.Before(first) {
			first = d
		}
		if d.After(last) {
			last = d
		}
	}
	return first, last
}

// asyncOneByOne sends n events one at a time, each after the previous one
// completed, and returns publish → completion of each.
func (h *harness) asyncOneByOne(ctx context.Context, c *clientsdk.Client, probe *asyncProbe, n int) ([]time.Duration, error) {
	probe.reset(n)
	for i := range n {
		probe.markSent(i, time.Now())
		if _, err := c.InvokeAsync(ctx, "ev", []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			return nil, err
		}
		if err := probe.wait(ctx, i+1, 30*time.Second); err != nil {
			return nil, err
		}
	}
	lat, _ := probe.latencies()
	return lat, nil
}

// syncOneByOne calls the function n times, one at a time.
func (h *harness) syncOneByOne(ctx context.Context, nc *nats.Conn, n int) []time.Duration {
	var out []time.Duration
	for range n {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		if natsReq(nc, clientsdk.LambdaSubject("ev"), invokePayload) == nil {
			out = append(out, time.Since(t0))
		}
	}
	return out
}
