package broker

import (
	"compress/gzip"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsMaxScrapes bounds the scrapes served at once (more get 503): a
// scrape costs a few milliseconds, a flood of them must not cost a core.
const metricsMaxScrapes = 4

// metricsReadyWait bounds how long the first scrape waits for the status
// and nodes buckets to be read (later scrapes read the cache at once).
const metricsReadyWait = 5 * time.Second

// metrics is the broker's Prometheus side (docs/metrics.md): a registry of
// its own (never the global one) with the gateway's request metrics, the
// state of the apps, instances, lambdas and nodes as the buckets say
// (stateCollector, read from watch-fed caches at scrape time), the
// embedded server's NATS and JetStream figures (natsCollector), and Go's
// and the process's collectors. It serves /metrics on the gateway and,
// with Config.MetricsAddr, on a listener of its own.
type metrics struct {
	b       *Broker
	logger  *slog.Logger
	reg     *prometheus.Registry
	http    *httpMetrics
	state   *stateCache
	handler http.Handler

	// srv and ln are the --metrics-addr listener, when there is one.
	srv *http.Server
	ln  net.Listener
}

// newMetrics makes b's registry. Nothing is watched until the first
// scrape: a server nobody scrapes pays nothing for its metrics.
func newMetrics(b *Broker) *metrics {
	m := &metrics{b: b, logger: b.logger.With("component", "metrics"), reg: prometheus.NewRegistry()}
	m.http = newHTTPMetrics()
	m.state = newStateCache(b, m.logger)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.http.requests, m.http.duration,
		&stateCollector{m: m},
		&natsCollector{b: b},
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: metricsMaxScrapes,
		// No Timeout: it would buffer the whole answer; the collectors
		// bound their own requests.
		// Compressed by ServeHTTP at gzip's best speed: the default level
		// took a quarter of a scrape's CPU for a few KB less.
		DisableCompression: true,
	})
	return m
}

// ServeHTTP answers a scrape: the caches are started (and read once)
// first, and routes no app declares any more lose their request series.
func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := m.state.ensure(r.Context(), metricsReadyWait); err != nil {
		m.logger.Warn("scrape: the status and nodes buckets are not read yet; answering with what is known", "err", err)
	}
	if m.b.router != nil {
		m.http.prune(m.b.router.routes())
	}
	w.Header().Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r.Header.Values("Accept-Encoding")) {
		m.handler.ServeHTTP(w, r)
		return
	}
	gz := gzipWriters.Get().(*gzip.Writer)
	gz.Reset(w)
	defer gzipWriters.Put(gz)
	w.Header().Set("Content-Encoding", "gzip")
	gr := &gzipResponse{ResponseWriter: w, gz: gz}
	m.handler.ServeHTTP(gr, r)
	if gr.started && !gr.plain {
		_ = gz.Close()
	}
}

// gzipWriters are reused gzip writers at the best speed.
var gzipWriters = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return gz
}}

// gzipResponse writes the body through a gzip writer, unless the handler
// took the Content-Encoding header back before it wrote (promhttp does
// for its plain-text errors).
type gzipResponse struct {
	http.ResponseWriter
	gz      *gzip.Writer
	started bool
	plain   bool
}

func (g *gzipResponse) start() {
	if !g.started {
		g.started, g.plain = true, g.Header().Get("Content-Encoding") != "gzip"
	}
}

// WriteHeader decides whether the body is compressed, and writes the header.
func (g *gzipResponse) WriteHeader(code int) {
	g.start()
	g.ResponseWriter.WriteHeader(code)
}

// Write writes p, compressed or not.
func (g *gzipResponse) Write(p []byte) (int, error) {
	g.start()
	if g.plain {
		return g.ResponseWriter.Write(p)
	}
	return g.gz.Write(p)
}

// acceptsGzip reports whether Accept-Encoding values take gzip (with a
// weight above 0, or none).
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			_, q, ok := strings.Cut(strings.ReplaceAll(params, " ", ""), "q=")
			if !ok {
				return true
			}
			w, err := strconv.ParseFloat(q, 64)
			return err == nil && w > 0
		}
	}
	return false
}

// listen serves /metrics alone on Config.MetricsAddr, under the gateway's
// authentication rule (and TLS, when the gateway has it).
func (m *metrics) listen() error {
	addr := m.b.cfg.MetricsAddr
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.New("metrics listener cannot listen on " + addr + ": " + err.Error() + " (choose another with --metrics-addr)")
	}
	m.ln = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m)
	// The gateway's checks, bound to this listener (its port is what the
	// local-user lookup matches).
	g := &gateway{b: m.b, ln: ln, logger: m.logger}
	m.srv = &http.Server{
		Handler: g.authenticate(mux),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connInfoKey{}, &connInfo{})
		},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	serve := func() error { return m.srv.Serve(ln) }
	if m.b.tls.clients != nil {
		m.srv.TLSConfig = m.b.tls.clients.Clone()
		serve = func() error { return m.srv.ServeTLS(ln, "", "") }
	}
	go func() {
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.logger.Error("metrics listener stopped", "err", err)
		}
	}()
	return nil
}

// stop closes the listener (within 5 s) and ends the caches' watches.
func (m *metrics) stop(ctx context.Context) error {
	var err error
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err = m.srv.Shutdown(ctx)
	}
	m.state.stop()
	return err
}

// MetricsURL returns the URL of /metrics on the --metrics-addr listener
// (https://… with TLS), or "" when there is none.
func (b *Broker) MetricsURL() string {
	if b.metrics == nil || b.metrics.ln == nil {
		return ""
	}
	scheme := "http://"
	if b.tls.clients != nil {
		scheme = "https://"
	}
	return scheme + b.metrics.ln.Addr().String() + "/metrics"
}
