package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"
)

// figServe: `dartup serve` process start → ready (figure 7).
func (h *harness) figServe(ctx context.Context) []*Figure {
	f := &Figure{ID: "serve", Num: 7, Title: "`dartup serve` cold start to ready",
		Goal: "median start → ready file < 300 ms"}
	n := h.n(15, 3)
	var fresh, health, restart, bare []time.Duration
	var firstErr error
	for i := 0; i < n && ctx.Err() == nil; i++ {
		// bare nats-server process (no JetStream): start → its URL on stdout.
		t0 := time.Now()
		c, _, err := startChild(h.bins.natsserver, nil)
		if err == nil {
			bare = append(bare, time.Since(t0))
			c.stop()
		} else if firstErr == nil {
			firstErr = err
		}

		data := filepath.Join(h.tmp, fmt.Sprintf("serve-%d", i))
		httpAddr, err := freeAddr()
		if err != nil {
			firstErr = err
			break
		}
		_, port, _ := splitHostPort(httpAddr)
		hc := &http.Client{Timeout: 200 * time.Millisecond}
		healthy := make(chan time.Duration, 1)
		pctx, stopPoll := context.WithCancel(ctx)
		t0 = time.Now()
		go func() {
			for pctx.Err() == nil {
				if resp, err := hc.Get("http://" + httpAddr + "/healthz"); err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						healthy <- time.Since(t0)
						return
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
		s, err := startServe(ctx, h.bins.dartup, data, filepath.Join(h.logDir, fmt.Sprintf("serve-start-%d.log", i)), "-p", port)
		if err != nil {
			stopPoll()
			firstErr = err
			break
		}
		fresh = append(fresh, s.ready)
		select {
		case d := <-healthy:
			health = append(health, d)
		case <-time.After(5 * time.Second):
		}
		stopPoll()
		s.stop()
		// the same data dir again: a restart with the assets already there.
		s, err = startServe(ctx, h.bins.dartup, data, filepath.Join(h.logDir, fmt.Sprintf("serve-restart-%d.log", i)))
		if err != nil {
			firstErr = err
			break
		}
		restart = append(restart, s.ready)
		s.stop()
	}
	if len(fresh) == 0 {
		f.notMeasured(fmt.Sprint(firstErr))
		f.add(unmeasured("dartup serve, new data dir: start → ready file", "dartup", fmt.Sprint(firstErr)))
		return []*Figure{f}
	}
	base := f.add(latencyRow("bare nats-server process (no JetStream): start → listening", "baseline", "ms", bare))
	base.Short = "bare nats-server"
	r := f.add(latencyRow("dartup serve, new data dir: start → ready file", "dartup", "ms", fresh))
	r.Note = "creates the JetStream assets, starts the control API, gateway and runner"
	ratio(r, base)
	hr := f.add(latencyRow("dartup serve, new data dir: start → /healthz 200", "dartup", "ms", health))
	ratio(hr, base)
	rr := f.add(latencyRow("dartup serve, existing data dir: start → ready file", "dartup", "ms", restart))
	ratio(rr, base)
	f.judge(r.Median, 300, "ms")
	f.Note = "Times run from just before fork/exec to the ready file `DATA/serve.json` (polled every 0.2 ms) or the first `/healthz` 200 (polled every 1 ms). The baseline is the bare nats-server of the same module in its own process, without JetStream."
	if firstErr != nil {
		f.Note += fmt.Sprintf(" Some samples failed: %v.", firstErr)
	}
	return []*Figure{f}
}
