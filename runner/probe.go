package runner

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// probeTimeout bounds one probe: a connection or a GET.
const probeTimeout = 2 * time.Second

// readyPoll is the time between readiness probes.
const readyPoll = 50 * time.Millisecond

// probeClient does the http probes: no keep-alive (each probe is a fresh
// connection, as a new client's would be), no proxy from the environment, no
// redirects followed (a 3xx is not ready).
var probeClient = &http.Client{
	Timeout:   probeTimeout,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// probeOnce checks p against the instance's port on this machine: tcp
// connects, http GETs the path and wants a 2xx. It returns why it failed.
func probeOnce(ctx context.Context, p clientsdk.Probe, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	switch p.Kind {
	case clientsdk.ProbeTCP:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	case clientsdk.ProbeHTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.Path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "dartup-probe")
		resp, err := probeClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", p.Path, err)
		}
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("GET %s answered %s", p.Path, resp.Status)
		}
	}
	return nil
}

// awaitReady probes until p passes (nil) or timeout passes (the last
// failure), or ctx ends (its error).
func awaitReady(ctx context.Context, p clientsdk.Probe, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = probeOnce(ctx, p, port); last == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := min(readyPoll, time.Until(deadline))
		if wait <= 0 {
			return fmt.Errorf("not ready after %s: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// watchHealth checks p every interval until it fails failures times in a
// row (it returns the last failure) or ctx ends (nil).
func watchHealth(ctx context.Context, p clientsdk.Probe, port int, interval time.Duration, failures int) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	bad := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := probeOnce(ctx, p, port)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			bad = 0
			continue
		}
		if bad++; bad >= failures {
			return fmt.Errorf("failed %d health checks in a row: %w", bad, err)
		}
	}
}
