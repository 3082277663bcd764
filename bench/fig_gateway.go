package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// gatewayClients is the number of concurrent keep-alive clients of the
// gateway figure.
const gatewayClients = 32

// loadRun is what one run of the HTTP load generator saw.
type loadRun struct {
	lat    []time.Duration
	failed int64
	rps    float64
}

// httpLoad sends GET url from gatewayClients keep-alive clients for d (with
// load): a failed request is counted and the client goes on.
func httpLoad(ctx context.Context, url string, d time.Duration) loadRun {
	tr := &http.Transport{MaxIdleConnsPerHost: gatewayClients, Proxy: nil}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var failed atomic.Int64
	res, _ := load(ctx, gatewayClients, d, func(int) error {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				err = errors.New(resp.Status)
			}
		}
		if err != nil {
			failed.Add(1)
			return errIgnored // counted, not timed; the client goes on
		}
		return nil
	})
	return loadRun{lat: res.lat, failed: failed.Load(), rps: float64(len(res.lat)) / res.elapsed.Seconds()}
}

// figGateway: the gateway in front of 4 instances against nginx in front
// of the same 4 and one instance reached directly, then failed requests
// during a rolling restart under load (figure 9).
func (h *harness) figGateway(ctx context.Context) []*Figure {
	lat := &Figure{ID: "gateway-p50", Num: 9, Title: fmt.Sprintf("HTTP gateway → 4 instances, %d clients: p50 latency", gatewayClients),
		Goal: "dartup p50 ≤ 1.2× nginx"}
	tput := &Figure{ID: "gateway-rps", Num: 9, Title: fmt.Sprintf("HTTP gateway → 4 instances, %d clients: throughput", gatewayClients),
		Goal: "dartup ≥ 0.8× nginx"}
	roll := &Figure{ID: "gateway-rollout", Num: 9, Title: "failed requests during a rolling restart of 4 instances under load",
		Goal: "0 failed requests"}
	figs := []*Figure{lat, tput, roll}
	fail := func(why string) []*Figure {
		for _, f := range figs {
			f.notMeasured(why)
		}
		return figs
	}
	s, err := startServe(ctx, h.bins.dartup, filepath.Join(h.tmp, "gateway", "data"), filepath.Join(h.logDir, "serve-gateway.log"))
	if err != nil {
		return fail(err.Error())
	}
	defer s.stop()
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(s.natsURL))
	if err != nil {
		return fail(err.Error())
	}
	defer c.Close()
	spec := clientsdk.AppSpec{Name: "httpd", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeExe, Instances: 4,
		HTTP: []clientsdk.HTTPRoute{{Prefix: "/"}}}
	stored, err := c.Push(ctx, spec, h.bins.httpd, nil)
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, _, err = c.WaitDeployed(wctx, stored.Name, stored.Revision)
		cancel()
	}
	if err != nil {
		return fail("push: " + err.Error())
	}
	info, err := c.Describe(ctx, "httpd")
	if err != nil {
		return fail(err.Error())
	}
	var addrs []string
	for _, in := range info.Summary.Instances {
		addrs = append(addrs, in.Address)
	}
	d := time.Duration(h.n(5, 1)) * time.Second
	direct := httpLoad(ctx, "http://"+addrs[0]+"/", d)
	gw := httpLoad(ctx, s.httpURL+"/", d)
	nginxURL, stopNginx, nerr := h.startNginx(addrs)
	var ng loadRun
	if nerr == nil {
		ng = httpLoad(ctx, nginxURL, d)
		stopNginx()
	}
	h.gatewayRows(lat, tput, direct, gw, ng, nerr)

	// Failed requests while `dartup restart` replaces the 4 instances.
	var during loadRun
	done := make(chan struct{})
	go func() { during = httpLoad(ctx, s.httpURL+"/", d+3*time.Second); close(done) }()
	time.Sleep(d / 4)
	rs, rerr := c.Restart(ctx, "httpd", 0)
	if rerr == nil {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		_, _, rerr = c.WaitDeployed(wctx, rs.Name, rs.Revision)
		cancel()
	}
	<-done
	if rerr != nil {
		roll.notMeasured("restart: " + rerr.Error())
		return figs
	}
	r := roll.add(valueRow(fmt.Sprintf("failed of %d requests during `dartup restart` (4 instances, %d clients)", int64(len(during.lat))+during.failed, gatewayClients),
		"dartup", "requests", []float64{float64(during.failed)}))
	roll.judge(r.Median, 0, "requests")
	return figs
}

// gatewayRows adds the latency and throughput rows and verdicts.
func (h *harness) gatewayRows(lat, tput *Figure, direct, gw, ng loadRun, nerr error) {
	dl := lat.add(latencyRow("one instance, direct", "baseline", "µs", direct.lat))
	var nl *Row
	if nerr == nil {
		nl = lat.add(latencyRow("nginx (proxy_pass, keepalive upstream) → 4 instances", "baseline", "µs", ng.lat))
		nl.Short = "nginx"
	} else {
		lat.add(unmeasured("nginx → 4 instances", "baseline", nerr.Error()))
	}
	gl := lat.add(latencyRow("dartup gateway → 4 instances", "dartup", "µs", gw.lat))
	dl.Short = "direct"
	ratio(gl, nl)
	tputRow := func(label, role string, r loadRun) *Row {
		row := tput.add(valueRow(label, role, "req/s", []float64{r.rps}))
		row.Note = fmt.Sprintf("%d failed", r.failed)
		return row
	}
	tputRow("one instance, direct", "baseline", direct)
	var nt *Row
	if nerr == nil {
		nt = tputRow("nginx → 4 instances", "baseline", ng)
		nt.Short = "nginx"
	}
	gt := tputRow("dartup gateway → 4 instances", "dartup", gw)
	ratio(gt, nt)
	if nl == nil || !gl.Measured || !nl.Measured {
		lat.notMeasured("no nginx baseline")
		tput.notMeasured("no nginx baseline")
		return
	}
	lat.judge(gl.Ratio, 1.2, "×")
	tput.Measured, tput.Limit, tput.GoalUnit = gt.Ratio, 0.8, "×"
	tput.Status = StatusMiss
	if gt.Ratio >= 0.8 {
		tput.Status = StatusPass
	}
	tput.Verdict = fmt.Sprintf("%s (goal ≥ %s): %s", fmtVal(gt.Ratio, "×"), fmtVal(0.8, "×"), tput.Status)
}

// startNginx runs nginx in front of addrs on a free loopback port, when
// nginx is installed (Debian package nginx); it returns its URL.
func (h *harness) startNginx(addrs []string) (string, func(), error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			return "", nil, errors.New("nginx is not installed (apt-get install nginx)")
		}
		bin = "/usr/sbin/nginx"
	}
	dir := filepath.Join(h.tmp, "nginx")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", nil, err
	}
	_ = os.Chmod(dir, 0o777)
	listen, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	servers := ""
	for _, a := range addrs {
		servers += "    server " + a + ";\n"
	}
	conf := fmt.Sprintf(`worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream app {
%[2]s    keepalive 64;
  }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, servers, listen)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-c", cf, "-p", dir)
	out, _ := os.Create(filepath.Join(h.logDir, "nginx.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	// SIGTERM: nginx's master stops its workers first (SIGKILL would leave
	// them running).
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); _ = out.Close() }
	url := "http://" + listen + "/"
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return url, stop, nil
			}
		}
	}
	stop()
	b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	return "", nil, fmt.Errorf("nginx did not answer: %s", strings.TrimSpace(string(b)))
}
