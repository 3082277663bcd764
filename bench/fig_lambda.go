package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// invokePayload is the event every warm and cold invocation sends.
var invokePayload = []byte(`{"n":1,"text":"hello, lambda"}`)

// lambdaServe starts a `dartup serve` for a lambda figure and connects to it.
func (h *harness) lambdaServe(ctx context.Context, name string) (*serveProc, *clientsdk.Client, error) {
	s, err := startServe(ctx, h.bins.dartup, filepath.Join(h.tmp, name), filepath.Join(h.logDir, "serve-"+name+".log"))
	if err != nil {
		return nil, nil, err
	}
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(s.natsURL))
	if err != nil {
		s.stop()
		return nil, nil, err
	}
	return s, c, nil
}

// pushLambda pushes a lambda and waits until it answers (the first answer
// may be a cold start); it returns the first error that is not "no runner yet".
func pushLambda(ctx context.Context, c *clientsdk.Client, spec clientsdk.AppSpec, file string, event []byte) error {
	spec.Kind = clientsdk.KindLambda
	if _, err := c.Push(ctx, spec, file, nil); err != nil {
		return fmt.Errorf("push %s: %w", spec.Name, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ictx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := c.Invoke(ictx, spec.Name, event)
		cancel()
		if err == nil {
			return nil
		}
		var e *clientsdk.Error
		retry := errors.As(err, &e) && (e.Code == 503 || e.Code == 404)
		if !retry || time.Now().After(deadline) {
			return fmt.Errorf("lambda %s does not answer (does this dartup host lambdas?): %w", spec.Name, err)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// natsReq is one request-reply that fails on a service-error header.
func natsReq(nc *nats.Conn, subj string, data []byte) error {
	m, err := nc.Request(subj, data, 10*time.Second)
	if err != nil {
		return err
	}
	if e := clientsdk.ErrorFromMsg(m); e != nil {
		return e
	}
	return nil
}

// httpPost posts data and fails on a status other than 200.
func httpPost(hc *http.Client, url string, data []byte) error {
	resp, err := hc.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}

// timedPath is one way of invoking the echo function.
type timedPath struct {
	name string
	call func() error
	into []time.Duration
}

// measureRounds runs each path's call n times (after a warm-up), in
// alternating rounds, so that drift on a shared machine hits every path alike.
func measureRounds(ctx context.Context, paths []*timedPath, n, round, warm int) error {
	for _, p := range paths {
		for i := 0; i < warm; i++ {
			if err := p.call(); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	for len(paths[0].into) < n && ctx.Err() == nil {
		for _, p := range paths {
			for i := 0; i < round; i++ {
				t0 := time.Now()
				if err := p.call(); err != nil {
					return fmt.Errorf("%s: %w", p.name, err)
				}
				p.into = append(p.into, time.Since(t0))
			}
		}
	}
	return ctx.Err()
}

func newHTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}
}

// figWarm: warm invoke latency (figure 1).
func (h *harness) figWarm(ctx context.Context) []*Figure {
	f := &Figure{ID: "warm", Num: 1, Title: "warm invoke (aws-lambda-go bootstrap)", Goal: "`lambda.NAME` p50 ≤ 2× bare NATS request-reply"}
	fail := func(err error) []*Figure {
		f.notMeasured(err.Error())
		f.add(unmeasured("dartup `lambda.echo` over NATS", "dartup", err.Error()))
		return []*Figure{f}
	}
	s, c, err := h.lambdaServe(ctx, "warm")
	if err != nil {
		return fail(err)
	}
	defer s.stop()
	defer c.Close()
	resp, _, err := startChild(h.bins.responder, nil, s.natsURL, "bench.echo")
	if err != nil {
		return fail(err)
	}
	defer resp.stop()
	if err := pushLambda(ctx, c, clientsdk.AppSpec{Name: "echo"}, h.bins.bootstrap, invokePayload); err != nil {
		return fail(err)
	}
	nativeSpec := clientsdk.AppSpec{Name: "echonative", Lambda: &clientsdk.LambdaSpec{Protocol: clientsdk.ProtocolNATS}}
	if err := pushLambda(ctx, c, nativeSpec, h.bins.native, invokePayload); err != nil {
		return fail(err)
	}
	nc, err := nats.Connect(s.natsURL, nats.Name("bench-invoke"))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	rnc, err := nats.Connect(s.natsURL, nats.Name("bench-relay"))
	if err != nil {
		return fail(err)
	}
	defer rnc.Close()
	rl, err := startRelay(rnc, "bench.relay")
	if err != nil {
		return fail(err)
	}
	defer rl.close()
	if err := rl.spawn(h.bins.bootstrap, 1); err != nil {
		return fail(err)
	}
	hc := newHTTPClient()
	paths := []*timedPath{
		{name: "bare", call: func() error { return natsReq(nc, "bench.echo", invokePayload) }},
		{name: "lambda", call: func() error { return natsReq(nc, clientsdk.LambdaSubject("echo"), invokePayload) }},
		{name: "gateway", call: func() error { return httpPost(hc, s.httpURL+"/echo", invokePayload) }},
		{name: "relay", call: func() error { return natsReq(nc, "bench.relay", invokePayload) }},
	}
	native := &timedPath{name: "native", call: func() error { return natsReq(nc, clientsdk.LambdaSubject("echonative"), invokePayload) }}
	fnc, err := nats.Connect(s.natsURL, nats.Name("bench-native-floor"))
	if err != nil {
		return fail(err)
	}
	defer fnc.Close()
	nf, err := startNativeFloor(fnc, s.natsURL, h.bins.native, "bench.nativefloor")
	if err != nil {
		return fail(err)
	}
	defer nf.close()
	nativeFloorPath := &timedPath{name: "native-floor", call: func() error { return natsReq(nc, "bench.nativefloor", invokePayload) }}
	paths = append(paths, native, nativeFloorPath)
	var rie *rieProc
	rieWhy := "no --rie PATH given (the harness never downloads or builds the emulator)"
	if h.cfg.rie != "" {
		if rie, err = startRIE(ctx, h.cfg.rie, h.bins.bootstrap, filepath.Join(h.logDir, "rie-warm.log")); err != nil {
			rieWhy = err.Error()
		} else {
			defer rie.stop()
			paths = append(paths, &timedPath{name: "rie", call: func() error { return httpPost(hc, rie.url, invokePayload) }})
		}
	}
	if err := measureRounds(ctx, paths, h.n(5000, 1000), 250, 200); err != nil {
		return fail(err)
	}
	lam := warmRows(f, paths, rie != nil, rieWhy)
	return []*Figure{f, nativeWarmFigure(paths[0].into, native.into, nativeFloorPath.into, lam)}
}

// warmRows adds figure 1's Runtime API rows from its measured paths (bare,
// lambda, gateway, relay, then the emulator's at 6 when measured, else why
// not) with their ratios and notes; it returns the `lambda.echo` row.
func warmRows(f *Figure, paths []*timedPath, withRIE bool, rieWhy string) *Row {
	bare := f.add(latencyRow("bare nats.go responder on the same server (the floor)", "baseline", "µs", paths[0].into))
	bare.Short = "bare NATS"
	lam := f.add(latencyRow("dartup `lambda.echo` over NATS", "dartup", "µs", paths[1].into))
	gw := f.add(latencyRow("dartup HTTP gateway POST /echo (keep-alive)", "dartup", "µs", paths[2].into))
	gw.Note = "API Gateway v1 event in, the echoed event out"
	floor := f.add(latencyRow("protocol floor: minimal NATS → Runtime API relay (harness) + the same bootstrap", "baseline", "µs", paths[3].into))
	floor.Note = "the least code that does what `lambda.NAME` does: no queue, limits, timeouts or stats"
	ratio(lam, bare)
	ratio(gw, bare)
	ratio(floor, bare)
	if floor.Measured && lam.Measured {
		lam.Note = fmt.Sprintf("%.2f× the relay floor", lam.Median/floor.Median)
	}
	var rr *Row
	if withRIE {
		rr = f.add(latencyRow("the same bootstrap under the AWS Runtime Interface Emulator (HTTP)", "peer", "µs", paths[6].into))
		ratio(rr, bare)
	} else {
		f.add(unmeasured("the same bootstrap under the AWS Runtime Interface Emulator (HTTP)", "peer", rieWhy))
	}
	f.judge(lam.Ratio, 2, "×")
	f.Note = "One caller, one request at a time, after a warm-up; the paths alternate in rounds of 250. The bootstrap (bench/workers/bootstrap, aws-lambda-go `lambda.Start`) echoes the event; dartup runs it through its AWS Lambda Runtime API with the default settings (4 workers at most, keep-warm 60 s). The floor is a separate nats.go process answering on the same dartup server. The relay row runs the same design with nothing but the protocols — a NATS subscription in the harness that hands each request to the bootstrap's pending `GET …/next` and replies with its `POST …/response` — to show what any Runtime-API lambda over NATS costs: two loopback HTTP exchanges and a process hop more than the floor."
	if f.Status == StatusMiss && floor.Measured {
		if lam.Median <= floor.Median*1.05 {
			f.Note += fmt.Sprintf(" **Why the goal is missed:** the relay floor — the same two protocols with nothing else — is itself %.2f× bare NATS here, and `lambda.echo` is at %.2f× of it: the miss is the cost of the Runtime API design (a loopback HTTP exchange and one more process per invocation, on 2 shared cores), not of dartup's code on top of it.", floor.Ratio, lam.Median/floor.Median)
		} else {
			f.Note += fmt.Sprintf(" **Why the goal is missed:** the relay floor — the same two protocols with nothing else — is %.2f× bare NATS here; dartup adds %s at p50 on top of it (its queue, limits, timeouts and stats, and the runner sharing the serve process with the broker).", floor.Ratio, fmtVal(lam.Median-floor.Median, "µs"))
		}
	}
	if rr != nil && rr.Measured {
		f.Note += fmt.Sprintf(" Against the emulator: `lambda.echo` p50 is %.2f× the emulator's.", lam.Median/rr.Median)
	}
	return lam
}

// nativeWarmFigure is figure 1's native row (measured in the same rounds):
// `lambda.NAME` on the native protocol against bare NATS.
func nativeWarmFigure(bareLat, nativeLat, floorLat []time.Duration, runtimeAPI *Row) *Figure {
	f := &Figure{ID: "warm-native", Num: 1, Title: "warm invoke, native protocol (app.ServeLambda, --protocol nats)",
		Goal: "p50 ≤ 1.3× and p99 ≤ 1.5× bare NATS request-reply"}
	bare := f.add(latencyRow("bare nats.go responder on the same server (the floor)", "baseline", "µs", bareLat))
	bare.Short = "bare NATS"
	nat := f.add(latencyRow("dartup `lambda.echonative` over NATS, native protocol", "dartup", "µs", nativeLat))
	floor := f.add(latencyRow("protocol floor: minimal NATS relay (harness) to the same native worker", "baseline", "µs", floorLat))
	floor.Note = "one message more than bare request-reply, nothing else: no queue, limits, timeouts or stats"
	ratio(nat, bare)
	ratio(floor, bare)
	if !nat.Measured || !bare.Measured || bare.P99 == 0 {
		f.notMeasured("no latencies")
		return f
	}
	p99 := nat.P99 / bare.P99
	f.judge(nat.Ratio, 1.3, "×")
	f.Verdict = fmt.Sprintf("p50 %.2f× (goal ≤ 1.30×), p99 %.2f× (goal ≤ 1.50×)", nat.Ratio, p99)
	if nat.Ratio <= 1.3 && p99 <= 1.5 {
		f.Status = StatusPass
	} else {
		f.Status = StatusMiss
	}
	f.Verdict += ": " + f.Status
	nat.Note = fmt.Sprintf("p99 %.2f× bare's", p99)
	if runtimeAPI != nil && runtimeAPI.Measured {
		nat.Note += fmt.Sprintf("; %.2f× the Runtime API's `lambda.echo` p50", nat.Median/runtimeAPI.Median)
	}
	if floor.Measured {
		nat.Note += fmt.Sprintf("; %.2f× its protocol floor", nat.Median/floor.Median)
	}
	f.Note = nativeWhy(nat, floor)
	f.Note += "Measured in figure 1's rounds, alternating with its paths. The worker (bench/workers/native, `app.ServeLambda`) echoes the event. `dartup serve` runs native lambdas in direct mode (docs/lambdas.md): a free worker is subscribed to `lambda.NAME` itself and answers the caller directly (caller → worker → caller, as bare request-reply), then sends dartup a done notice; dartup is the fallback (queue, cold start, 429) through a leaf-node server. The floor row is the hand-over that direct mode replaced (and `--direct-lambdas=false` keeps) with nothing else: a harness subscription that forwards each request to a native worker forked by hand, one more message on the way."
	return f
}

// nativeWhy explains a missed native goal (what direct mode adds to bare
// request-reply), when the floor was measured.
func nativeWhy(nat, floor *Row) string {
	if !floor.Measured || nat.Ratio <= 1.3 {
		return ""
	}
	return fmt.Sprintf("**Why the goal is missed:** in direct mode a warm request takes bare request-reply's two deliveries; what a native invocation adds is the worker's done notice (sent before its answer, so that the server has its subscription again before the caller's next request) and the SDK's per-request work: %s at p50 over bare here (the hand-over floor row is %.2f× bare). On this shared machine the ratio moves by tenths between runs. ", fmtVal(nat.Median-(nat.Median/nat.Ratio), "µs"), floor.Ratio)
}

// figConcurrency: 32 callers, 4 workers (figure 3).
func (h *harness) figConcurrency(ctx context.Context) []*Figure {
	f := &Figure{ID: "concurrency", Num: 3, Title: "concurrency: 32 callers, 4 workers"}
	fail := func(err error) []*Figure {
		f.notMeasured(err.Error())
		f.add(unmeasured("dartup `lambda.conc`, max-workers 4", "dartup", err.Error()))
		return []*Figure{f}
	}
	s, c, err := h.lambdaServe(ctx, "conc")
	if err != nil {
		return fail(err)
	}
	defer s.stop()
	defer c.Close()
	resp, _, err := startChild(h.bins.responder, nil, s.natsURL, "bench.echo")
	if err != nil {
		return fail(err)
	}
	defer resp.stop()
	if err := pushLambda(ctx, c, clientsdk.AppSpec{Name: "conc", Lambda: &clientsdk.LambdaSpec{MaxWorkers: 4}}, h.bins.bootstrap, invokePayload); err != nil {
		return fail(err)
	}
	nativeSpec := clientsdk.AppSpec{Name: "concnative", Lambda: &clientsdk.LambdaSpec{MaxWorkers: 4, Protocol: clientsdk.ProtocolNATS}}
	if err := pushLambda(ctx, c, nativeSpec, h.bins.native, invokePayload); err != nil {
		return fail(err)
	}
	var conns []*nats.Conn
	for i := 0; i < 4; i++ {
		nc, err := nats.Connect(s.natsURL, nats.Name(fmt.Sprintf("bench-load-%d", i)))
		if err != nil {
			return fail(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
	}
	const callers = 32
	dur := time.Duration(h.n(4000, 1000)) * time.Millisecond
	lambdaCall := func(i int) error { return natsReq(conns[i%4], clientsdk.LambdaSubject("conc"), invokePayload) }
	bareCall := func(i int) error { return natsReq(conns[i%4], "bench.echo", invokePayload) }
	// warm-up: start the 4 workers.
	if _, err := load(ctx, callers, time.Second, lambdaCall); err != nil {
		return fail(err)
	}
	c0 := readCPU(s.pid())
	lr, err := load(ctx, callers, dur, lambdaCall)
	if err != nil {
		return fail(err)
	}
	c1 := readCPU(s.pid())
	br, err := load(ctx, callers, dur, bareCall)
	if err != nil {
		return fail(err)
	}
	c2 := readCPU(s.pid())
	nativeCall := func(i int) error { return natsReq(conns[i%4], clientsdk.LambdaSubject("concnative"), invokePayload) }
	if _, err := load(ctx, callers, time.Second, nativeCall); err != nil { // warm-up: its 4 workers
		return fail(err)
	}
	c3 := readCPU(s.pid())
	nr, err := load(ctx, callers, dur, nativeCall)
	if err != nil {
		return fail(err)
	}
	c4 := readCPU(s.pid())
	bare := f.add(br.row("bare nats.go responder on the same server, 32 callers", "baseline"))
	bare.Short = "bare NATS"
	cpuNote(bare, c1, c2, len(br.lat))
	lam := f.add(lr.row("dartup `lambda.conc`, 32 callers, --max-workers 4", "dartup"))
	ratio(lam, bare)
	lamCPU := cpuNote(lam, c0, c1, len(lr.lat))
	nat := f.add(nr.row("dartup `lambda.concnative` (native protocol), 32 callers, --max-workers 4", "dartup"))
	ratio(nat, bare)
	natCPU := cpuNote(nat, c3, c4, len(nr.lat))
	nat.Note += fmt.Sprintf("; %.2f× the Runtime API's throughput", nat.Throughput/max(lam.Throughput, 1))
	floorCPU := h.concurrencyFloors(ctx, f, s, conns, dur, bare, [2]*Row{lam, nat}, [2]float64{lamCPU, natCPU})
	h.rieConcurrency(ctx, f, bare, callers, dur)
	f.Status, f.Verdict = StatusInfo, fmt.Sprintf("%.0f req/s, p99 %s, serve %.0f µs CPU per request (routing floor at that rate: %s); native %.0f req/s, p99 %s, %.0f µs (floor: %s); bare NATS: %.0f req/s", lam.Throughput, fmtVal(lam.P99, "µs"), lamCPU, floorCPU[0], nat.Throughput, fmtVal(nat.P99, "µs"), natCPU, floorCPU[1], bare.Throughput)
	f.Note = fmt.Sprintf("32 goroutines over 4 NATS connections call in a closed loop for %s after a 1 s warm-up that starts the 4 workers; latency is per request, throughput is completed requests per second. dartup gives each worker one invocation at a time (AWS semantics), so 32 callers share 4 workers; the bare responder answers from one process. dartup's throughput is %.2f× the bare responder's. The CPU figures (from /proc/stat and the serve process's /proc/PID/stat, 10 ms ticks) tell whether the run was bound by the 2 shared cores; other load on the machine counts in the busy share.", dur, lam.Throughput/bare.Throughput)
	return []*Figure{f}
}

// times is a/b as "N.NN×", or "n/a ×" when b is 0 (10 ms CPU ticks).
func times(a, b float64) string {
	if b <= 0 {
		return "n/a ×"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// cpuNote writes into r's note the machine's busy share and the serve
// process's CPU per request between two snapshots, and returns the latter
// in µs.
func cpuNote(r *Row, a, b cpuTimes, requests int) float64 {
	busy, serveMS := cpuUse(a, b)
	perReq := 1000 * serveMS / float64(max(requests, 1))
	r.Note = fmt.Sprintf("machine CPU %.0f%% busy; serve process %.0f µs CPU per request", busy, perReq)
	return perReq
}

// concurrencyFloors adds figure 3's floors: the Runtime API relay, and the
// routing floor at the Runtime API's and at the native protocol's rate
// (matchedFloor), each compared in the note of the dartup row it is the
// floor of. It returns the two routing floors' CPU per request, as text
// ("not measured: why" when one failed).
func (h *harness) concurrencyFloors(ctx context.Context, f *Figure, s *serveProc, conns []*nats.Conn, dur time.Duration, bare *Row, rows [2]*Row, cpu [2]float64) [2]string {
	lam := rows[0]
	if floor, relayCPU, err := h.relayFloor(ctx, s, conns, dur); err != nil {
		f.add(unmeasured("protocol floor: minimal NATS → Runtime API relay + 4 bootstraps, 32 callers", "baseline", err.Error()))
	} else {
		f.add(floor)
		ratio(floor, bare)
		lam.Note += fmt.Sprintf("; %s the relay floor's CPU per request, %.2f× its throughput", times(cpu[0], relayCPU), lam.Throughput/max(floor.Throughput, 1))
	}
	var out [2]string
	for i, name := range []string{"the Runtime API's", "the native protocol's"} {
		label := "routing floor at " + name + " rate: 4 bare nats.go responders, one request at a time each, 32 callers"
		floor, floorCPU, err := h.matchedFloor(ctx, s, conns, dur, label, rows[i].Throughput)
		if err != nil {
			f.add(unmeasured(label, "baseline", err.Error()))
			out[i] = "not measured: " + err.Error()
			continue
		}
		f.add(floor)
		ratio(floor, bare)
		rows[i].Note += fmt.Sprintf("; %s the serve CPU per request of the routing floor at its rate", times(cpu[i], floorCPU))
		out[i] = fmt.Sprintf("%.0f µs", floorCPU)
	}
	return out
}

// matchedFloor measures what routing alone costs the serve process at
// target requests per second: figure 3's load against 4 bare nats.go
// responders in a queue group, each answering one request at a time, paced
// to target together (bench/workers/responder's pool mode). nats-server's
// CPU per message grows as the rate falls (fewer messages share each read,
// write and wake-up), so a lambda's CPU per request is compared with this
// floor at its own rate, not with the bare responder's at a rate several
// times higher. It returns the row and the serve process's µs per request.
func (h *harness) matchedFloor(ctx context.Context, s *serveProc, conns []*nats.Conn, dur time.Duration, label string, target float64) (*Row, float64, error) {
	if target <= 0 {
		return nil, 0, errors.New("the dartup row has no throughput to match")
	}
	resp, _, err := startChild(h.bins.responder, nil, s.natsURL, "bench.pool", "4", strconv.FormatFloat(max(target, 1), 'f', 0, 64))
	if err != nil {
		return nil, 0, err
	}
	defer resp.stop()
	call := func(i int) error { return natsReq(conns[i%len(conns)], "bench.pool", invokePayload) }
	if _, err := load(ctx, 32, time.Second, call); err != nil { // as the lambdas' warm-up
		return nil, 0, err
	}
	c0 := readCPU(s.pid())
	res, err := load(ctx, 32, dur, call)
	if err != nil {
		return nil, 0, err
	}
	row := res.row(label, "baseline")
	perReq := cpuNote(row, c0, readCPU(s.pid()), len(res.lat))
	row.Note += fmt.Sprintf(" (routing only); paced to %.0f req/s (its throughput is what it reached)", target)
	return row, perReq, nil
}

// rieConcurrency adds figure 3's row for the AWS Runtime Interface
// Emulator with 32 callers, when --rie gives it (it runs one invocation at
// a time: most callers get an error, counted in the note).
func (h *harness) rieConcurrency(ctx context.Context, f *Figure, bare *Row, callers int, dur time.Duration) {
	if h.cfg.rie == "" {
		f.add(unmeasured("AWS Runtime Interface Emulator, 32 callers", "peer", "no --rie PATH given; the emulator runs one invocation at a time"))
	} else if rie, err := startRIE(ctx, h.cfg.rie, h.bins.bootstrap, filepath.Join(h.logDir, "rie-conc.log")); err != nil {
		f.add(unmeasured("AWS Runtime Interface Emulator, 32 callers", "peer", err.Error()))
	} else {
		hc := newHTTPClient()
		var mu sync.Mutex
		codes := map[string]int{}
		rieRes, _ := load(ctx, callers, dur, func(int) error {
			resp, err := hc.Post(rie.url, "application/json", bytes.NewReader(invokePayload))
			key := ""
			if err != nil {
				key = "transport error"
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				key = fmt.Sprintf("HTTP %d", resp.StatusCode)
			}
			mu.Lock()
			codes[key]++
			mu.Unlock()
			if key != "HTTP 200" {
				return errIgnored
			}
			return nil
		})
		rie.stop()
		r := f.add(rieRes.row("AWS Runtime Interface Emulator, 32 callers", "peer"))
		ratio(r, bare)
		var parts []string
		for k, v := range codes {
			parts = append(parts, fmt.Sprintf("%s × %d", k, v))
		}
		sort.Strings(parts)
		r.Note = "answers: " + strings.Join(parts, ", ") + " (successes only in the latency and throughput)"
	}
}

// relayFloor runs figure 3's load against the protocol floor of a
// Runtime API lambda over NATS — the relay of figure 1, in a process of
// its own (the harness run as relayChildArg) with 4 bootstraps — and
// returns its row and the CPU per request of the serve process (routing)
// and the relay together: what any Runtime-API lambda over NATS costs
// before its queue, limits, timeouts and stats.
func (h *harness) relayFloor(ctx context.Context, s *serveProc, conns []*nats.Conn, dur time.Duration) (*Row, float64, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	relay, _, err := startChild(self, nil, relayChildArg, s.natsURL, h.bins.bootstrap, "4")
	if err != nil {
		return nil, 0, err
	}
	defer relay.stop()
	call := func(i int) error { return natsReq(conns[i%len(conns)], "bench.relay", invokePayload) }
	s0, r0 := readCPU(s.pid()), readCPU(relay.cmd.Process.Pid)
	res, err := load(ctx, 32, dur, call)
	if err != nil {
		return nil, 0, err
	}
	busy, serveMS := cpuUse(s0, readCPU(s.pid()))
	_, relayMS := cpuUse(r0, readCPU(relay.cmd.Process.Pid))
	n := float64(max(len(res.lat), 1))
	row := res.row("protocol floor: minimal NATS → Runtime API relay (a process of its own) + 4 bootstraps, 32 callers", "baseline")
	row.Note = fmt.Sprintf("machine CPU %.0f%% busy; serve (routing) and relay processes %.0f µs CPU per request (serve %.0f µs); net/http, a goroutine per request, no queue, limits, timeouts or stats", busy, 1000*(serveMS+relayMS)/n, 1000*serveMS/n)
	return row, 1000 * (serveMS + relayMS) / n, nil
}

// errIgnored marks a call that is counted but not timed.
var errIgnored = errors.New("ignored")

type loadResult struct {
	lat     []time.Duration
	elapsed time.Duration
}

func (l loadResult) row(label, role string) *Row {
	r := latencyRow(label, role, "µs", l.lat)
	if l.elapsed > 0 {
		r.Throughput = float64(len(l.lat)) / l.elapsed.Seconds()
	}
	return r
}

// load runs callers goroutines calling fn in a closed loop for d.
func load(ctx context.Context, callers int, d time.Duration, fn func(i int) error) (loadResult, error) {
	var mu sync.Mutex
	var all []time.Duration
	var first error
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				err := fn(i)
				if errors.Is(err, errIgnored) {
					continue
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return loadResult{lat: all, elapsed: time.Since(start)}, first
}
