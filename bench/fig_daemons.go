package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// supervisorRun is what one supervisor (dartup or PM2) measured.
type supervisorRun struct {
	rssMB    []float64
	idleMB   []float64
	respawns []time.Duration
	err      error
	// pidfiles are the running apps' pid files; stop ends the supervisor.
	pidfiles []string
	stop     func()
	// pid is the supervisor's process; rssAt is when rssMB was sampled.
	pid   int
	rssAt time.Time
}

func (s *supervisorRun) close() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// figDaemons: respawn after SIGKILL and supervisor memory with many idle
// daemons, dartup vs PM2 (figure 4).
func (h *harness) figDaemons(ctx context.Context) []*Figure {
	apps := h.n(100, 20)
	resp := &Figure{ID: "respawn", Num: 4, Title: "daemon respawn after SIGKILL (first restart), dartup vs PM2",
		Goal: "dartup p50 ≤ 0.5× PM2"}
	mem := &Figure{ID: "rss", Num: 4, Title: fmt.Sprintf("supervisor memory with %d idle daemons, dartup vs PM2", apps),
		Goal: "dartup serve RSS ≤ 0.6× the PM2 daemon's"}

	// the variants that explain the memory figure, one at a time.
	dc := h.daemonsDartup(ctx, apps, true, false)
	dc.close()
	dn := h.daemonsDartup(ctx, apps, false, true)
	dn.close()
	// dartup and PM2 side by side: each measured idle, then the kills
	// alternate between them, so that both see the same load on the machine.
	d := h.daemonsDartup(ctx, apps, false, false)
	defer d.close()
	p := h.daemonsPM2(ctx, apps)
	defer p.close()
	// idle growth: both fleets sit idle a while longer, then RSS again.
	var dGrow, pGrow float64
	var d2, p2 []float64
	growOK := false
	idleFor := time.Duration(h.n(15, 5)) * time.Second
	if d.err == nil && p.err == nil && sleepCtx(ctx, idleFor) == nil {
		var e1, e2 error
		d2, e1 = rssSamples(ctx, d.pid, 5, 200*time.Millisecond)
		dt := time.Since(d.rssAt).Minutes()
		p2, e2 = rssSamples(ctx, p.pid, 5, 200*time.Millisecond)
		pt := time.Since(p.rssAt).Minutes()
		if e1 == nil && e2 == nil {
			dGrow = (summarize(d2, false).Median - summarize(d.rssMB, false).Median) / dt
			pGrow = (summarize(p2, false).Median - summarize(p.rssMB, false).Median) / pt
			growOK = true
		}
	}
	dKill, pKill := d.err, p.err
	if d.err == nil && p.err == nil {
		d.respawns, p.respawns, dKill = killAlternately(ctx, d.pidfiles, p.pidfiles)
		pKill = dKill
	} else if d.err == nil {
		d.respawns, dKill = killEach(ctx, d.pidfiles)
	}
	d.close()
	p.close()
	floor, floorErr := h.spawnByHand(ctx, h.n(30, 10))

	dr := addOrMissing(resp, dKill, "dartup: SIGKILL → new worker started", "dartup", func() *Row {
		return latencyRow("dartup: SIGKILL → new worker started", "dartup", "ms", d.respawns)
	})
	pr := addOrMissing(resp, pKill, "PM2: SIGKILL → new worker started", "peer", func() *Row {
		return latencyRow("PM2: SIGKILL → new worker started", "peer", "ms", p.respawns)
	})
	dm := addOrMissing(mem, d.err, "dartup serve RSS (embedded NATS + JetStream + runner; workers excluded)", "dartup", func() *Row {
		return valueRow("dartup serve RSS (embedded NATS + JetStream + runner; workers excluded)", "dartup", "MB", d.rssMB)
	})
	pm := addOrMissing(mem, p.err, "PM2 God daemon RSS (workers excluded)", "peer", func() *Row {
		return valueRow("PM2 God daemon RSS (workers excluded)", "peer", "MB", p.rssMB)
	})
	fr := addOrMissing(resp, floorErr, "the same worker forked by the harness: fork → its recorded start (the floor both share)", "baseline", func() *Row {
		return latencyRow("the same worker forked by the harness: fork → its recorded start (the floor both share)", "baseline", "ms", floor)
	})
	if pr != nil {
		pr.Short = "PM2"
	}
	if pm != nil {
		pm.Short = "PM2"
	}
	ratio(dr, pr)
	ratio(dm, pm)
	var dcRow *Row
	if dc.err == nil {
		dcRow = mem.add(valueRow("dartup serve RSS, the same apps pushed as `--runtime command` (no artifact stored)", "dartup", "MB", dc.rssMB))
		ratio(dcRow, pm)
	} else {
		mem.add(unmeasured("dartup serve RSS, the same apps pushed as `--runtime command` (no artifact stored)", "dartup", dc.err.Error()))
	}
	var dnRow *Row
	if dn.err == nil {
		dnRow = mem.add(valueRow("`dartup serve --no-runner` RSS after the same artifact pushes (nothing runs)", "dartup", "MB", dn.rssMB))
	} else {
		mem.add(unmeasured("`dartup serve --no-runner` RSS after the same artifact pushes (nothing runs)", "dartup", dn.err.Error()))
	}
	if d.err == nil && len(d.idleMB) > 0 {
		mem.add(valueRow("dartup serve RSS with no apps (for reference)", "dartup", "MB", d.idleMB))
	}
	if p.err == nil && len(p.idleMB) > 0 {
		mem.add(valueRow("PM2 God daemon RSS with no apps (for reference, after `pm2 ping`)", "peer", "MB", p.idleMB))
	}
	if growOK {
		later := func(who string) string {
			return fmt.Sprintf("%s RSS %.0f s later, the daemons still idle", who, idleFor.Seconds())
		}
		dl := mem.add(valueRow(later("dartup serve"), "dartup", "MB", d2))
		pl := mem.add(valueRow(later("PM2 God daemon"), "peer", "MB", p2))
		pl.Short = "PM2 later"
		ratio(dl, pl)
		mem.add(&Row{Label: "dartup serve RSS growth while the daemons idle", Role: "dartup", Measured: true, Unit: "MB/min", N: 2, Median: dGrow, P99: dGrow,
			Note: "from the first RSS sample to a second one taken 15–30 s later, before the kills; over so short a window a garbage-collected heap growing between collections shows up too, so this alone does not prove a leak"})
		mem.add(&Row{Label: "PM2 God daemon RSS growth while the daemons idle", Role: "peer", Measured: true, Unit: "MB/min", N: 2, Median: pGrow, P99: pGrow})
	}
	for _, x := range []struct {
		f          *Figure
		r          *Row
		limit      float64
		dErr, pErr error
	}{{resp, dr, 0.5, dKill, pKill}, {mem, dm, 0.6, d.err, p.err}} {
		switch {
		case x.r != nil && x.r.Ratio > 0:
			x.f.judge(x.r.Ratio, x.limit, "×")
		case x.pErr != nil:
			x.f.notMeasured("PM2: " + x.pErr.Error())
		default:
			x.f.notMeasured(fmt.Sprint(x.dErr))
		}
	}
	resp.Note = fmt.Sprintf("The same Go worker binary under both supervisors, %d apps each, every app killed once with SIGKILL, alternating between the two supervisors so that both see the same load on the shared machine (so every sample is a first restart: dartup restarts at once the first time, PM2's default restart_delay is 0). The time runs from just before kill(2) to the start time the new worker process wrote into its pid file (CLOCK_REALTIME, ns), so both are measured the same way and polling does not add to it. PM2 runs with its defaults (`interpreter: none`, fork mode, autorestart); dartup with its defaults (`dartup push` of the binary).", apps)
	if resp.Status == StatusMiss && fr != nil && dr != nil && pr != nil {
		resp.Note += fmt.Sprintf(" **Why the goal is missed:** starting the worker at all takes %s (fork/exec and the Go runtime's start: the floor both supervisors pay); above it dartup spends %s and PM2 %s noticing the exit and starting the new process (p50s).",
			fmtVal(fr.Median, "ms"), fmtVal(dr.Median-fr.Median, "ms"), fmtVal(pr.Median-fr.Median, "ms"))
		if room := pr.Median/2 - fr.Median; room > 0 {
			resp.Note += fmt.Sprintf(" Half of PM2's total leaves dartup %s above the floor.", fmtVal(room, "ms"))
		} else {
			resp.Note += " Half of PM2's total is below the floor itself here, so no supervisor could meet the goal on this run."
		}
	}
	if mem.Status == StatusMiss && dcRow != nil && dcRow.Measured && dm != nil {
		mem.Note = fmt.Sprintf("**Why the goal is missed:** with the apps pushed as artifacts (`dartup push` of the %.1f MB worker, %d apps) `dartup serve` holds %s; the same apps declared as `--runtime command` (nothing stored) hold %s, %.2f× PM2. ", fileMB(h.bins.daemon), apps, fmtVal(dm.Median, "MB"), fmtVal(dcRow.Median, "MB"), dcRow.Ratio)
		if dnRow != nil && dnRow.Measured {
			mem.Note += fmt.Sprintf("A `serve --no-runner` that only stores the same artifacts holds %s, so the excess is memory the embedded nats-server keeps after the JetStream object-store writes, not the supervision of the daemons. ", fmtVal(dnRow.Median, "MB"))
		}
	}
	mem.Note += "RSS from /proc/PID/status (VmRSS), the median of 5 samples 200 ms apart, taken 3 s after the last of the apps started. dartup's figure is the whole `dartup serve` process: the embedded nats-server with JetStream (the artifacts, status, logs and events are stored there), the control API, the HTTP gateway and the runner. PM2's is its God daemon (PM2_HOME/pm2.pid); neither includes the workers."
	return []*Figure{resp, mem}
}

func addOrMissing(f *Figure, err error, label, role string, mk func() *Row) *Row {
	if err != nil {
		f.add(unmeasured(label, role, err.Error()))
		return nil
	}
	return f.add(mk())
}

// killEach kills every app's worker once and times the respawns.
func killEach(ctx context.Context, pidfiles []string) ([]time.Duration, error) {
	var out []time.Duration
	for _, pf := range pidfiles {
		old, ok := readPidStamp(pf)
		if !ok {
			return out, fmt.Errorf("no pid in %s", pf)
		}
		t0 := time.Now()
		if err := syscall.Kill(old.pid, syscall.SIGKILL); err != nil {
			return out, err
		}
		st, err := waitNewPid(ctx, pf, old.pid, 10*time.Second)
		if err != nil {
			return out, err
		}
		out = append(out, st.started.Sub(t0))
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return out, err
		}
	}
	return out, nil
}

// killAlternately kills app i of a, then app i of b, and so on.
func killAlternately(ctx context.Context, a, b []string) (ra, rb []time.Duration, err error) {
	for i := range a {
		x, err := killEach(ctx, a[i:i+1])
		if err != nil {
			return ra, rb, fmt.Errorf("dartup: %w", err)
		}
		y, err := killEach(ctx, b[i:i+1])
		if err != nil {
			return ra, rb, fmt.Errorf("PM2: %w", err)
		}
		ra, rb = append(ra, x...), append(rb, y...)
	}
	return ra, rb, nil
}

// waitAllStarted waits until every pid file names a live process.
func waitAllStarted(ctx context.Context, pidfiles []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		for _, pf := range pidfiles {
			if st, ok := readPidStamp(pf); !ok || !alive(st.pid) {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d apps not running after %s", missing, len(pidfiles), timeout)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// daemonsDartup runs apps idle daemons under `dartup serve`, pushed as
// artifacts (the normal way) or, with command, as `--runtime command` apps
// naming the binary on disk (no artifact in JetStream), and measures the
// serve process's RSS and, unless command, the respawns.
// With noRunner it only pushes the artifacts to a `serve --no-runner` and
// measures its RSS: what storing them costs, without any daemon running.
func (h *harness) daemonsDartup(ctx context.Context, apps int, command, noRunner bool) (res supervisorRun) {
	dir := filepath.Join(h.tmp, "daemons-dartup")
	var extra []string
	switch {
	case command:
		dir += "-command"
	case noRunner:
		dir += "-norunner"
		extra = append(extra, "--no-runner")
	}
	s, err := startServe(ctx, h.bins.dartup, filepath.Join(dir, "data"), filepath.Join(h.logDir, "serve-"+filepath.Base(dir)+".log"), extra...)
	if err != nil {
		return supervisorRun{err: err}
	}
	// The daemons write their pid files here, as users of their own when
	// dartup runs as root.
	if err := os.Chmod(dir, 0o1777); err != nil {
		return supervisorRun{err: err}
	}
	defer func() {
		if res.err != nil {
			s.stop()
		} else {
			res.stop = s.stop
		}
	}()
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(s.natsURL))
	if err != nil {
		return supervisorRun{err: err}
	}
	defer c.Close()
	if err := sleepCtx(ctx, time.Second); err != nil {
		return supervisorRun{err: err}
	}
	if res.idleMB, err = rssSamples(ctx, s.pid(), 3, 100*time.Millisecond); err != nil {
		return supervisorRun{err: err}
	}
	pidfiles := make([]string, apps)
	for i := range apps {
		pidfiles[i] = filepath.Join(dir, fmt.Sprintf("d%03d.pid", i))
	}
	t0 := time.Now()
	if err := h.pushDaemons(ctx, c, pidfiles, command); err != nil {
		return supervisorRun{err: err}
	}
	if !noRunner {
		if err := waitAllStarted(ctx, pidfiles, 120*time.Second); err != nil {
			return supervisorRun{err: err}
		}
	}
	h.logf("  dartup (%s): %d daemons pushed and running in %.1fs", filepath.Base(dir), apps, time.Since(t0).Seconds())
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return supervisorRun{err: err}
	}
	if res.rssMB, err = rssSamples(ctx, s.pid(), 5, 200*time.Millisecond); err != nil {
		return supervisorRun{err: err}
	}
	res.pidfiles, res.pid, res.rssAt = pidfiles, s.pid(), time.Now()
	return res
}

// pushDaemons pushes one idle daemon app per pid file: the first alone,
// so that it uploads the artifact once, then the others four at a time,
// which find it stored (one build deployed as many apps). Pushed all at
// once, the first four would each upload it, replacing the object while
// the runner reads it.
func (h *harness) pushDaemons(ctx context.Context, c *clientsdk.Client, pidfiles []string, command bool) error {
	push := func(i int) error {
		spec := clientsdk.AppSpec{Name: fmt.Sprintf("d%03d", i), Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeExe,
			Env: map[string]string{"WORKER_PIDFILE": pidfiles[i]}}
		file := h.bins.daemon
		if command {
			spec.Runtime, spec.Command, file = clientsdk.RuntimeCommand, []string{h.bins.daemon}, ""
		}
		_, err := c.Push(ctx, spec, file, nil)
		return err
	}
	if err := push(0); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(pidfiles))
	sem := make(chan struct{}, 4)
	for i := 1; i < len(pidfiles); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = push(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// installPM2 installs the npm package pm2 into dir and returns the pm2 script.
func (h *harness) installPM2(ctx context.Context, dir string) (string, error) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", errors.New("npm is not on PATH to install pm2")
	}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel=error", "pm2")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install pm2: %v: %s", err, tail2(string(b)))
	}
	h.logf("  npm install pm2 took %.1fs", time.Since(t0).Seconds())
	h.res.Versions.PM2 = npmPackageVersion(filepath.Join(dir, "node_modules", "pm2", "package.json"))
	return filepath.Join(dir, "node_modules", ".bin", "pm2"), nil
}

func tail2(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 400 {
		s = "…" + s[len(s)-400:]
	}
	return s
}

func (h *harness) daemonsPM2(ctx context.Context, apps int) (res supervisorRun) {
	dir := filepath.Join(h.tmp, "daemons-pm2")
	pm2, err := h.installPM2(ctx, filepath.Join(dir, "npm"))
	if err != nil {
		return supervisorRun{err: err}
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return supervisorRun{err: err}
	}
	env := append(os.Environ(), "PM2_HOME="+home)
	pm2Do := func(args ...string) error {
		cmd := exec.CommandContext(ctx, pm2, args...)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pm2 %s: %v: %s", strings.Join(args, " "), err, tail2(string(b)))
		}
		return nil
	}
	kill := func() {
		cmd := exec.Command(pm2, "kill")
		cmd.Env = env
		_ = cmd.Run()
	}
	defer func() {
		if res.err != nil {
			kill()
		} else {
			res.stop = kill
		}
	}()
	var eco strings.Builder
	eco.WriteString("module.exports = { apps: [\n")
	pidfiles := make([]string, apps)
	for i := range apps {
		pidfiles[i] = filepath.Join(dir, fmt.Sprintf("d%03d.pid", i))
		fmt.Fprintf(&eco, "  { name: %q, script: %q, interpreter: 'none', env: { WORKER_PIDFILE: %q } },\n",
			fmt.Sprintf("d%03d", i), h.bins.daemon, pidfiles[i])
	}
	eco.WriteString("] };\n")
	ecoPath := filepath.Join(dir, "ecosystem.config.js")
	if err := os.WriteFile(ecoPath, []byte(eco.String()), 0o644); err != nil {
		return supervisorRun{err: err}
	}
	if err := pm2Do("ping"); err != nil { // starts the God daemon with no apps
		return supervisorRun{err: err}
	}
	if god, err := pm2Pid(home); err == nil {
		if err := sleepCtx(ctx, time.Second); err != nil {
			return supervisorRun{err: err}
		}
		res.idleMB, _ = rssSamples(ctx, god, 3, 100*time.Millisecond)
	}
	t0 := time.Now()
	if err := pm2Do("start", ecoPath); err != nil {
		return supervisorRun{err: err}
	}
	if err := waitAllStarted(ctx, pidfiles, 120*time.Second); err != nil {
		return supervisorRun{err: err}
	}
	h.logf("  PM2: %d daemons started in %.1fs", apps, time.Since(t0).Seconds())
	god, err := pm2Pid(home)
	if err != nil {
		return supervisorRun{err: err}
	}
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return supervisorRun{err: err}
	}
	if res.rssMB, err = rssSamples(ctx, god, 5, 200*time.Millisecond); err != nil {
		return supervisorRun{err: err}
	}
	res.pidfiles, res.pid, res.rssAt = pidfiles, god, time.Now()
	return res
}

// pm2Pid reads the God daemon's pid from PM2_HOME/pm2.pid.
func pm2Pid(home string) (int, error) {
	b, err := os.ReadFile(filepath.Join(home, "pm2.pid"))
	if err != nil {
		return 0, fmt.Errorf("PM2 daemon pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("PM2 daemon pid: %w", err)
	}
	return pid, nil
}

func fileMB(path string) float64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return float64(st.Size()) / (1 << 20)
}

// spawnByHand forks the benchmark daemon n times from the harness and times
// each to the start it records: the floor of any respawn.
func (h *harness) spawnByHand(ctx context.Context, n int) ([]time.Duration, error) {
	dir := filepath.Join(h.tmp, "spawn-floor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []time.Duration
	for i := 0; i < n; i++ {
		pf := filepath.Join(dir, fmt.Sprintf("%d.pid", i))
		cmd := exec.Command(h.bins.daemon)
		cmd.Env = append(os.Environ(), "WORKER_PIDFILE="+pf)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return out, err
		}
		st, err := waitNewPid(ctx, pf, 0, 10*time.Second)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil {
			return out, err
		}
		out = append(out, st.started.Sub(t0))
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return out, err
		}
	}
	return out, nil
}
