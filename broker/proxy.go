package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// proxyDialTimeout bounds a connection to an instance: a node whose machine
// is gone costs a request this much before it goes to another instance.
const proxyDialTimeout = 2 * time.Second

// errNoInstance: every ready instance was tried, or there was none.
var errNoInstance = errors.New("no ready instance")

// proxyTarget is what the transport needs to know about one proxied
// request: the app, and the addresses it tried.
type proxyTarget struct {
	app   string
	tried []string
}

type proxyTargetKey struct{}

// daemonProxy reverse-proxies requests to daemons' ready instances.
type daemonProxy struct {
	rp *httputil.ReverseProxy
	bk *backends
}

func newDaemonProxy(g *gateway, bk *backends) *daemonProxy {
	base := &http.Transport{
		Proxy:                 nil, // never a proxy from the server's environment
		DialContext:           (&net.Dialer{Timeout: proxyDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
	p := &daemonProxy{bk: bk}
	p.rp = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    &balancer{base: base, bk: bk},
		BufferPool:   bufferPool{},
		ErrorHandler: g.proxyError,
		ErrorLog:     nil,
	}
	return p
}

// rewrite prepares the outgoing request: X-Forwarded-For, -Host and -Proto
// (those the client sent are dropped), the path with the route's prefix
// stripped when asked; the instance's address is set by the balancer.
func rewrite(pr *httputil.ProxyRequest) {
	pr.SetXForwarded()
	// X-Real-IP, which apps behind nginx often trust, is the peer too, never
	// what the client claimed.
	pr.Out.Header.Del("X-Real-Ip")
	if host, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		pr.Out.Header.Set("X-Real-Ip", host)
	}
	keepTrace(pr)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "instance.dartup.invalid"
	if rt, ok := pr.In.Context().Value(routeKey{}).(route); ok && rt.strip && rt.Prefix != "/" {
		// On the path as it came (escapes kept: "/shop/a%2Fb" goes on as
		// "/a%2Fb"); the route's prefix has no escapes.
		p := strings.TrimPrefix(pr.In.URL.EscapedPath(), rt.Prefix)
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		if u, err := url.Parse(p); err == nil {
			pr.Out.URL.Path, pr.Out.URL.RawPath = u.Path, u.RawPath
		}
	}
}

type routeKey struct{}

// serve proxies r to one of app's ready instances.
func (p *daemonProxy) serve(w http.ResponseWriter, r *http.Request, rt route) {
	noteDaemon(r, rt)
	ctx := context.WithValue(r.Context(), proxyTargetKey{}, &proxyTarget{app: rt.app})
	ctx = context.WithValue(ctx, routeKey{}, rt)
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// balancer is the proxy's transport: it sends each request to the ready
// instance with the fewest requests in flight, and, when the connection is
// refused before anything was sent, to the next one.
type balancer struct {
	base http.RoundTripper
	bk   *backends
}

// RoundTrip implements http.RoundTripper.
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	t, _ := req.Context().Value(proxyTargetKey{}).(*proxyTarget)
	if t == nil {
		return nil, errors.New("dartup proxy: no target")
	}
	var body *trackedBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &trackedBody{rc: req.Body}
	}
	var lastErr error
	for {
		addr, ok := b.bk.pick(t.app, t.tried)
		if !ok {
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, errNoInstance
		}
		t.tried = append(t.tried, addr)
		out := *req
		u := *req.URL
		u.Host = addr
		out.URL = &u
		if body != nil {
			out.Body = body
		}
		inflight := b.bk.count(addr)
		inflight.Add(1)
		resp, err := b.base.RoundTrip(&out)
		if err == nil {
			resp.Body = releaseOnClose(resp.Body, inflight)
			return resp, nil
		}
		inflight.Add(-1)
		if !isDialError(err) || (body != nil && body.read.Load()) {
			return nil, err
		}
		b.bk.markDown(addr)
		lastErr = err
	}
}

// isDialError reports whether err happened while connecting, before any
// byte of the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// trackedBody is the request body as the transport sees it: it records
// whether it was read (then a retry could not send it again), and leaves
// closing to the server.
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (t *trackedBody) Read(p []byte) (int, error) {
	t.read.Store(true)
	return t.rc.Read(p)
}

func (t *trackedBody) Close() error { return nil }

// releaseOnClose counts the request out of its instance's in-flight
// requests when the response body is closed. An upgraded connection's body
// (a WebSocket) stays writable.
func releaseOnClose(rc io.ReadCloser, inflight *atomic.Int64) io.ReadCloser {
	var once sync.Once
	release := func() { once.Do(func() { inflight.Add(-1) }) }
	if rwc, ok := rc.(io.ReadWriteCloser); ok {
		return &releasingRWC{ReadWriteCloser: rwc, release: release}
	}
	return &releasingBody{ReadCloser: rc, release: release}
}

type releasingBody struct {
	io.ReadCloser
	release func()
}

func (r *releasingBody) Close() error {
	defer r.release()
	return r.ReadCloser.Close()
}

type releasingRWC struct {
	io.ReadWriteCloser
	release func()
}

func (r *releasingRWC) Close() error {
	defer r.release()
	return r.ReadWriteCloser.Close()
}

// bufferPool lends the proxy its copy buffers.
type bufferPool struct{}

var proxyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *proxyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { proxyBuffers.Put(&b) }

// proxyError answers a request the proxy could not complete: 503 with the
// app's state when no instance is ready, 502 at once otherwise.
func (g *gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	t, _ := r.Context().Value(proxyTargetKey{}).(*proxyTarget)
	app := ""
	if t != nil {
		app = t.app
	}
	if errors.Is(err, errNoInstance) {
		g.warnRequest(r, "no ready instance for a request", "app", app)
		writeError(w, http.StatusServiceUnavailable, "NoReadyInstance", g.notReadyReason(r.Context(), app))
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	g.warnRequest(r, "cannot reach an instance", "app", app, "err", err)
	writeError(w, http.StatusBadGateway, "BadGateway", "cannot reach an instance of "+app+": "+err.Error())
}

// notReadyReason says why app has no ready instance, from its summary.
func (g *gateway) notReadyReason(ctx context.Context, app string) string {
	msg := "no instance of " + app + " is ready"
	if g.b == nil || g.b.router == nil {
		return msg
	}
	spec, ok := g.b.router.spec(ctx, app)
	if !ok || g.b.api == nil {
		return msg
	}
	if spec.Stopped {
		return msg + ": it is stopped; start it with `dartup start " + app + "`"
	}
	sum, err := g.b.api.summarize(ctx, spec)
	if err != nil {
		return msg
	}
	msg += ": " + string(sum.State)
	if sum.Message != "" {
		msg += " - " + sum.Message
	}
	return msg
}
