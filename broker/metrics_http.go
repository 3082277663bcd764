package broker

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Route labels of requests no app route takes.
const (
	routeHealthz   = "healthz"
	routeMetrics   = "metrics"
	routeUI        = "ui"
	routeUnmatched = "unmatched"
)

// httpDurationBuckets are the bounds of the gateway's request durations:
// from under a millisecond (a proxied request on loopback) to 30 s.
var httpDurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// httpMetrics counts the gateway's requests by route (the owner and the
// pattern it declared, never the path asked for), method and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// seen are the declared routes that have series, so that those of
	// routes no app declares any more can be dropped (prune).
	mu   sync.RWMutex
	seen map[routeLabel]struct{}
}

// routeLabel is the app and route labels of a request.
type routeLabel struct{ app, route string }

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dartup_http_requests_total",
			Help: "Requests the HTTP gateway answered, by the app and route that took them (route: the declared pattern, or healthz, metrics, ui, unmatched), method and status code."},
			[]string{"app", "route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dartup_http_request_duration_seconds",
			Help: "Time the HTTP gateway took to answer a request, from its headers to the end of the answer, by app, route and method.", Buckets: httpDurationBuckets},
			[]string{"app", "route", "method"}),
		seen: map[routeLabel]struct{}{},
	}
}

// metricsOrRoute serves the gateway's GET /metrics, unless an app routes
// the request's host (api.example.com/…): such a host is the app's, its
// own /metrics included. /metrics on --metrics-addr is always dartup's.
func (g *gateway) metricsOrRoute(w http.ResponseWriter, r *http.Request) {
	if t := g.b.router.routes(); t.hostRouted(requestHost(r.Host)) {
		g.route(w, r)
		return
	}
	g.b.metrics.ServeHTTP(w, r)
}

// hostRouted reports whether a prefix route names host.
func (t *routeTable) hostRouted(host string) bool {
	for _, r := range t.prefixes {
		if r.Host != "" && r.Host == host {
			return true
		}
	}
	return false
}

// reqRoute is what the gateway learns, while it serves a request, about
// the route that took it: route fills it in (see noteRoute), instrument
// reads it once the request is done, so the route is matched once.
type reqRoute struct {
	label routeLabel
	set   bool
}

type reqRouteKey struct{}

// noteRoute records, for the request metrics, the route m that the
// gateway's route table gave r (ok: one did; a 405 or a name no route
// takes is "unmatched").
func noteRoute(r *http.Request, m routeMatch, ok bool) {
	switch {
	case !ok || m.allow != nil:
		setRouteLabel(r, routeLabel{route: routeUnmatched})
	case m.route.fn != nil:
		setRouteLabel(r, routeLabel{app: m.route.app, route: m.route.fn.Path})
	default:
		setRouteLabel(r, routeLabel{app: m.route.app, route: m.route.Host + m.route.Prefix})
	}
}

// setRouteLabel sets r's route label for the request metrics.
func setRouteLabel(r *http.Request, l routeLabel) {
	if rr, _ := r.Context().Value(reqRouteKey{}).(*reqRoute); rr != nil {
		rr.set, rr.label = true, l
	}
}

// noteLambdaName records, for the request metrics, that lambda name took
// r by its /NAME: the label a match of its /NAME route gives, also when the
// route table did not have the lambda yet (a moment after its push).
func noteLambdaName(r *http.Request, name string) {
	setRouteLabel(r, routeLabel{app: name, route: "/" + name})
}

// builtinRoute is the route label of a request no app route took: the
// gateway's own endpoints by path, "unmatched" for the rest (requests
// refused before routing included).
func builtinRoute(path string) string {
	switch {
	case path == "/healthz":
		return routeHealthz
	case path == "/metrics":
		return routeMetrics
	case path == "/ui" || strings.HasPrefix(path, "/ui/"):
		return routeUI
	}
	return routeUnmatched
}

// standardMethods are the method label's values; anything else is OTHER.
var standardMethods = map[string]string{}

func init() {
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace} {
		standardMethods[m] = m
	}
	for c := 100; c < 1000; c++ {
		codeLabels[c] = strconv.Itoa(c)
		if http.StatusText(c) == "" {
			codeLabels[c] = strconv.Itoa(c/100) + "xx"
		}
	}
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	if l, ok := standardMethods[m]; ok {
		return l
	}
	return "OTHER"
}

// codeLabels are the code label of each status: the code when Go knows
// its name, else its class ("4xx"), so that an app answering made-up
// codes cannot make hundreds of series.
var codeLabels [1000]string

// codeLabel returns the code label of status code c.
func codeLabel(c int) string {
	if c >= 100 && c < 1000 {
		return codeLabels[c]
	}
	return "other"
}

// instrument counts and times every request next serves: the one wrapper
// around the gateway's handler.
func (h *httpMetrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rr := &reqRoute{}
		path := r.URL.Path
		sw := &statusWriter{ResponseWriter: w}
		completed := false
		defer func() {
			code := ""
			if !completed {
				code = "aborted" // a panic (http.ErrAbortHandler): the answer was cut short
			}
			h.observe(rr, path, r.Method, code, sw.status(), time.Since(start))
		}()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), reqRouteKey{}, rr)))
		completed = true
	})
}

// observe records one request.
func (h *httpMetrics) observe(rr *reqRoute, path, method, code string, status int, d time.Duration) {
	l := rr.label
	if !rr.set {
		l = routeLabel{route: builtinRoute(path)}
	}
	if code == "" {
		code = codeLabel(status)
	}
	m := methodLabel(method)
	h.requests.WithLabelValues(l.app, l.route, m, code).Inc()
	h.duration.WithLabelValues(l.app, l.route, m).Observe(d.Seconds())
	if rr.set && l.app != "" {
		// After the series exist: a prune in between would miss them, and
		// the route would keep them after its app is gone.
		h.remember(l)
	}
}

// remember notes that declared route l has series.
func (h *httpMetrics) remember(l routeLabel) {
	h.mu.RLock()
	_, ok := h.seen[l]
	h.mu.RUnlock()
	if !ok {
		h.mu.Lock()
		h.seen[l] = struct{}{}
		h.mu.Unlock()
	}
}

// prune drops the series of routes the table t no longer has (an app
// removed, or pushed with other routes), so that the route label only
// takes values apps declare now.
func (h *httpMetrics) prune(t *routeTable) {
	declared := map[routeLabel]bool{}
	for _, r := range t.functions {
		declared[routeLabel{r.app, r.fn.Path}] = true
	}
	for _, r := range t.prefixes {
		declared[routeLabel{r.app, r.Host + r.Prefix}] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.seen {
		if !declared[l] {
			delete(h.seen, l)
			h.requests.DeletePartialMatch(prometheus.Labels{"app": l.app, "route": l.route})
			h.duration.DeletePartialMatch(prometheus.Labels{"app": l.app, "route": l.route})
		}
	}
}

// statusWriter notes the status a handler answers with. Flush and Hijack
// reach the connection's (Server-Sent Events, upgrades); Unwrap gives
// http.ResponseController the rest.
type statusWriter struct {
	http.ResponseWriter
	code int
}

// WriteHeader notes the final status (not a 1xx other than 101).
func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write notes 200 when no status was written first.
func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush sends what is buffered (200 when no status was written first).
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over (an upgrade: 101).
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.code == 0 {
		w.code = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// status is the status answered: 200 when the handler wrote nothing.
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
