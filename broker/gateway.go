package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/net/netutil"
)

// gateway is the HTTP side of dartup: /healthz, and (with the lambdas) /NAME.
type gateway struct {
	b        *Broker
	srv      *http.Server
	ln       net.Listener
	mux      *http.ServeMux
	logger   *slog.Logger
	backends *backends
	proxy    *daemonProxy
	drainSub *nats.Subscription
	cancel   context.CancelFunc

	// status is the status bucket: the backends' watch, /healthz's probe.
	status jetstream.KeyValue

	healthMu  sync.Mutex
	healthAt  time.Time // when the last write probe ran
	healthErr error     // and how it went

	// warned spaces the warnings about failed requests (warnRequest).
	warned warnLimiter
}

func startGateway(b *Broker) (*gateway, error) {
	ln, err := net.Listen("tcp", b.cfg.HTTPAddr)
	if err != nil {
		return nil, errors.New("HTTP gateway cannot listen on " + b.cfg.HTTPAddr + ": " + err.Error() + " (choose another with --port)")
	}
	ln = netutil.LimitListener(ln, maxConns(b.cfg.HTTPMaxConns))
	g := &gateway{b: b, ln: ln, mux: http.NewServeMux(), logger: b.logger.With("component", "gateway")}
	if err := g.startBackends(); err != nil {
		_ = ln.Close()
		return nil, err
	}
	g.mux.HandleFunc("GET /healthz", g.healthz)
	g.mux.HandleFunc("GET /metrics", g.metricsOrRoute)
	g.mux.HandleFunc("/", g.route)
	g.srv = &http.Server{
		Handler: b.metrics.http.instrument(g.traced(g.authenticate(g.mux))),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connInfoKey{}, &connInfo{})
		},
		ReadHeaderTimeout: 10 * time.Second,
		// An idle keep-alive connection is closed: holding sockets open must
		// cost a client something (slow bodies are bounded by the invoke's
		// own deadline).
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(g.logger.Handler(), slog.LevelWarn),
	}
	g.startUI() // /ui: the dashboard (ui.go)
	serve := func() error { return g.srv.Serve(ln) }
	if b.tls.clients != nil {
		// HTTPS with the certificate of the NATS port (and the same client
		// certificate rule); ServeTLS also sets up HTTP/2.
		g.srv.TLSConfig = b.tls.clients.Clone()
		serve = func() error { return g.srv.ServeTLS(ln, "", "") }
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.logger.Error("HTTP gateway stopped", "err", err)
		}
	}()
	return g, nil
}

// maxConns is the gateway's connection cap: n, or a quarter of the soft
// file descriptor limit (Go raises it to the hard limit at start), at
// least 64.
func maxConns(n int) int {
	if n > 0 {
		return n
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 4096
	}
	return int(max(min(lim.Cur/4, 1<<20), 64))
}

func (g *gateway) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := g.srv.Shutdown(ctx)
	if g.drainSub != nil {
		_ = g.drainSub.Unsubscribe()
	}
	g.cancel()
	return err
}

// startBackends follows the instances' statuses (where daemons' requests
// go) and answers the runners' drain requests.
func (g *gateway) startBackends() error {
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	kv, err := g.b.js.KeyValue(ctx, clientsdk.StatusBucket)
	if err != nil {
		cancel()
		return fmt.Errorf("HTTP gateway: open %s: %w", clientsdk.StatusBucket, err)
	}
	g.backends = newBackends(g.logger, g.b.cfg.ServerName)
	g.backends.self = g.isSelf
	g.proxy = newDaemonProxy(g, g.backends)
	g.status = kv
	go g.backends.watch(ctx, kv)
	g.drainSub, err = g.b.nc.Subscribe(clientsdk.GatewayDrainSubject, func(m *nats.Msg) {
		if g.b.replies.Allowed(m) {
			g.backends.drain(m, g.b.replies.Respond)
		}
	})
	if err != nil {
		cancel()
		return fmt.Errorf("HTTP gateway: subscribe %s: %w", clientsdk.GatewayDrainSubject, err)
	}
	return nil
}

// isSelf reports whether addr is this gateway's own listener (its port, on
// a loopback or unspecified address or one of this machine's).
func (g *gateway) isSelf(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	own := g.ln.Addr().(*net.TCPAddr)
	if err != nil || port != strconv.Itoa(own.Port) {
		return false
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() || own.IP.Equal(ip) {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// route sends a request where the route table says: a lambda's function
// route, a 405 when function routes match the path but not the method, a
// daemon's instances, or a lambda's /NAME. A request no route takes goes on
// as /NAME for a lambda (one pushed a moment ago, or a 404 that says what
// exists).
func (g *gateway) route(w http.ResponseWriter, r *http.Request) {
	m, ok := g.b.router.routes().match(r.Host, r.Method, r.URL.EscapedPath())
	noteRoute(r, m, ok)
	switch {
	case ok && m.allow != nil:
		methodNotAllowed(w, r, m.allow)
	case ok && m.route.fn != nil:
		g.invoke(w, r, m.route.app, clientsdk.HTTPRequestInfo{Path: r.URL.Path, Resource: m.route.fn.Path, PathParameters: m.params})
	case ok && !m.route.lambda:
		g.proxy.serve(w, r, m.route)
	default:
		g.invokeName(w, r)
	}
}

// methodNotAllowed answers 405 with the methods the path's function routes
// take in the Allow header.
func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow []string) {
	list := strings.Join(allow, ", ")
	w.Header().Set("Allow", list)
	writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", fmt.Sprintf("%s is not allowed on %s; its routes take %s (`dartup routes` lists them)", r.Method, r.URL.Path, list))
}

// writeJSON writes v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, map[string]any{"code": code, "errorType": typ, "errorMessage": msg})
}

func (g *gateway) healthz(w http.ResponseWriter, r *http.Request) {
	if !g.b.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "nats": g.b.ns.Running(), "jetstream": g.b.ns.JetStreamEnabled()})
		return
	}
	if werr := g.b.disk.WriteError(); werr != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "nats": true, "jetstream": true,
			"jetstream_write": werr, "disk": g.b.disk.usage()})
		return
	}
	if free, _ := diskSpace(g.b.cfg.DataDir); free >= 0 && free < minRecoverFree {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "nats": true, "jetstream": true,
			"disk_full": "the data disk has no room left", "disk": g.b.disk.usage()})
		return
	}
	if err := g.storeWritable(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "nats": true, "jetstream": true,
			"jetstream_write": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "nats": true, "jetstream": true})
}

// healthWriteTTL is how long the answer of a JetStream write probe is
// reused: /healthz writes at most once a second.
const healthWriteTTL = time.Second

// storeWritable reports (nil) whether JetStream takes a write now: it puts
// a key of its own ("_healthz.SERVER", never an app's: app names start
// with a letter or digit) in the status bucket, at most once per
// healthWriteTTL. A full disk or a store that lost its writes fails it.
func (g *gateway) storeWritable(ctx context.Context) error {
	g.healthMu.Lock()
	defer g.healthMu.Unlock()
	if time.Since(g.healthAt) < healthWriteTTL {
		return g.healthErr
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := g.status.Put(ctx, "_healthz."+clientsdk.TokenFrom(g.b.cfg.ServerName, "server"), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	g.healthAt, g.healthErr = time.Now(), err
	return err
}

// clientIP is the address the loopback exemption is judged on: the TCP peer,
// or, when X-Forwarded-For is trusted and the peer is a local proxy, the last
// hop that proxy appended. Earlier hops are whatever the client claimed and are
// never trusted. An unparsable last hop yields an invalid address (not loopback).
func (g *gateway) clientIP(r *http.Request) netip.Addr {
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)
	ip := peer.Addr().Unmap()
	if !g.b.cfg.TrustXForwardedFor || !ip.IsLoopback() {
		return ip
	}
	values := r.Header.Values("X-Forwarded-For")
	if len(values) == 0 {
		return ip
	}
	hops := strings.Split(values[len(values)-1], ",")
	last := strings.TrimSpace(hops[len(hops)-1])
	if a, err := netip.ParseAddr(last); err == nil {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(last); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// fromAppUser reports whether the TCP peer of r runs as one of the apps'
// users (see authenticator.fromAppUser): apps get no local exemption. The
// answer is looked up once per connection (its owner cannot change), not
// per request: the lookup reads /proc/net/tcp.
func (g *gateway) fromAppUser(r *http.Request) bool {
	a := g.b.auth
	if a.appUser == nil {
		return false
	}
	lookup := func() bool {
		peer, err := net.ResolveTCPAddr("tcp", r.RemoteAddr)
		if err != nil {
			return true
		}
		_, app := a.fromAppUser(peer, g.ln.Addr().(*net.TCPAddr).Port)
		return app
	}
	ci, ok := r.Context().Value(connInfoKey{}).(*connInfo)
	if !ok {
		return lookup()
	}
	ci.once.Do(func() { ci.appUser = lookup() })
	return ci.appUser
}

// connInfo is what the gateway learns once about a client connection.
type connInfo struct {
	once    sync.Once
	appUser bool
}

type connInfoKey struct{}

// authenticate enforces dart_up's rule: Basic auth with a user from the
// password file, except for loopback clients (other than apps' users) while
// passwords are not required. With --tls-verify-clients a verified client
// certificate is needed first. /healthz is always open. Basic credentials
// are dartup's: when a request presents them they are checked (even where
// none would be needed, as on NATS), then removed from the request, so that
// no app ever sees them; the user name goes on in the request's context (see
// authUser). Other Authorization schemes, such as an app's own Bearer
// tokens, are left alone.
func (g *gateway) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			next.ServeHTTP(w, r) // the health probe needs no password; nothing else does
			return
		}
		if g.b.cfg.TLS.VerifyClients && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			g.logger.Warn("refused HTTP request without a client certificate", "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, "Forbidden", "this dartup server needs a client certificate (--tls-verify-clients)")
			return
		}
		auth := r.Header.Values("Authorization")
		if len(auth) > 1 {
			writeError(w, http.StatusBadRequest, "BadRequest", "more than one Authorization header")
			return
		}
		if len(auth) == 1 && isBasic(auth[0]) {
			user, pass, ok := r.BasicAuth()
			r.Header.Del("Authorization")
			if !ok {
				challenge(w)
				return
			}
			g.checkBasic(w, r, next, user, pass)
			return
		}
		if !g.b.cfg.RequirePassword && g.clientIP(r).IsLoopback() && !g.fromAppUser(r) {
			next.ServeHTTP(w, r)
			return
		}
		challenge(w)
	})
}

// isBasic reports whether an Authorization value has the Basic scheme:
// its first token, up to any white space, is "basic" in any case (so that
// a malformed "Basic\t…" is refused rather than passed on to an app).
func isBasic(v string) bool {
	scheme, _, _ := strings.Cut(strings.TrimLeft(v, " \t"), " ")
	scheme, _, _ = strings.Cut(scheme, "\t")
	return strings.EqualFold(scheme, "Basic")
}

// authUserKey is the context key of the user name checked by authenticate.
type authUserKey struct{}

// authUser returns the user whose Basic credentials authenticate checked
// for r, or "" when there were none.
func authUser(r *http.Request) string {
	u, _ := r.Context().Value(authUserKey{}).(string)
	return u
}

// checkBasic checks user and pass through the login guard and serves r
// with the user in its context, or answers 401, 429 or 503.
func (g *gateway) checkBasic(w http.ResponseWriter, r *http.Request, next http.Handler, user, pass string) {
	out := g.b.logins.check(r.Context(), sourceKey(g.clientIP(r)), user, pass)
	switch out.result {
	case loginOK:
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authUserKey{}, user)))
	case loginLimited:
		g.b.logins.warn("http-limited", "refused HTTP request: too many failed logins from this address or for this user (no password check)",
			"user", user, "remote", r.RemoteAddr, "client", g.clientIP(r), "retry_after", out.retryAfter.Round(time.Second))
		retryAfter(w, out.retryAfter)
		writeError(w, http.StatusTooManyRequests, "TooManyLogins", "too many failed logins from this address or for this user; try again after "+w.Header().Get("Retry-After")+" s")
	case loginBusy:
		g.b.logins.warn("http-busy", "refused HTTP request: no password check free in time", "user", user, "remote", r.RemoteAddr)
		retryAfter(w, out.retryAfter)
		writeError(w, http.StatusServiceUnavailable, "Busy", "the server is busy checking passwords; try again after "+w.Header().Get("Retry-After")+" s")
	default:
		g.b.logins.warn("http-wrong", "refused HTTP request: wrong user or password", "user", user, "remote", r.RemoteAddr, "client", g.clientIP(r))
		challenge(w)
	}
}

// challenge answers 401 with a Basic challenge.
func challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="dartup", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, "Unauthorized", "this dartup server needs a user and password (HTTP Basic auth)")
}

// retryAfter sets Retry-After to d in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((d+time.Second-1)/time.Second))))
}
