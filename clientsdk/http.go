package clientsdk

import (
	"fmt"
	"strings"
	"time"
)

// HTTPRoute is a route of the HTTP gateway to a daemon's ready instances:
// requests for Host (any host when empty) whose path is Prefix or lies under
// it ("/shop" takes "/shop" and "/shop/cart", not "/shopping").
type HTTPRoute struct {
	Host   string `json:"host,omitempty"`
	Prefix string `json:"prefix"`
}

// String writes the route as push --http takes it: "HOST/PREFIX" or "/PREFIX".
func (r HTTPRoute) String() string { return r.Host + r.Prefix }

// Bounds of the daemons' HTTP settings.
const (
	// MaxRoutes bounds a daemon's --http routes.
	MaxRoutes = 32
	// MaxHostLength bounds a route's host (a DNS name).
	MaxHostLength = 253
	// MaxPathLength bounds a route's prefix and a probe's path.
	MaxPathLength = 1024
	// MinProbeInterval and MaxProbeInterval bound ready_timeout and health_interval.
	MinProbeInterval = 100 * time.Millisecond
	MaxProbeInterval = time.Hour
	// MaxHealthFailures bounds health_failures.
	MaxHealthFailures = 100
)

// Defaults of the daemons' HTTP settings.
const (
	DefaultReadyTimeout   = 60 * time.Second
	DefaultHealthInterval = 10 * time.Second
	DefaultHealthFailures = 3
	DefaultParallel       = 1
)

// ParseRoute reads push --http: "/", "/shop", "api.example.com/" or
// "api.example.com" (its root). The host is lowercased; a trailing "/" of a
// prefix other than the root is dropped.
func ParseRoute(s string) (HTTPRoute, error) {
	if s == "" {
		return HTTPRoute{}, fmt.Errorf("--http needs a route: /PREFIX or HOST/PREFIX, e.g. /, /shop or api.example.com/")
	}
	host, path := s, "/"
	if i := strings.IndexByte(s, '/'); i >= 0 {
		host, path = s[:i], s[i:]
	}
	r := HTTPRoute{Host: strings.ToLower(host), Prefix: path}
	if len(r.Prefix) > 1 {
		r.Prefix = strings.TrimRight(r.Prefix, "/")
		if r.Prefix == "" {
			r.Prefix = "/"
		}
	}
	if err := r.check(); err != "" {
		return HTTPRoute{}, fmt.Errorf("--http %q: %s (want /PREFIX or HOST/PREFIX, e.g. /, /shop or api.example.com/)", s, err)
	}
	return r, nil
}

// check returns what is wrong with r, or "".
func (r HTTPRoute) check() string {
	switch {
	case len(r.Host) > MaxHostLength:
		return fmt.Sprintf("the host is over %d bytes", MaxHostLength)
	case r.Host != "" && strings.Trim(r.Host, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "":
		return "the host may hold only letters, digits, '.' and '-' (no port, no scheme)"
	case r.Host != "" && (strings.HasPrefix(r.Host, ".") || strings.HasPrefix(r.Host, "-") || strings.Contains(r.Host, "..")):
		return "the host is not a DNS name"
	case r.Host != "" && !strings.Contains(r.Host, ".") && r.Host != "localhost":
		return "a host has a dot (api.example.com); for a path, start it with / (/" + r.Host + ")"
	case r.Host != strings.ToLower(r.Host):
		return "the host must be lowercase"
	case !strings.HasPrefix(r.Prefix, "/"):
		return "the path must start with /"
	case len(r.Prefix) > MaxPathLength:
		return fmt.Sprintf("the path is over %d bytes", MaxPathLength)
	case strings.ContainsAny(r.Prefix, "?#%* \t\r\n\x00") || strings.Contains(r.Prefix, "//") || hasDotSegment(r.Prefix):
		return "the path may not hold ?, #, %, *, spaces, //, . or .. segments"
	case GatewayPath(r.Prefix) != "" && (r.Host == "" || !PathUnder(r.Prefix, "/metrics")):
		return GatewayPath(r.Prefix) + gatewayPathHosts(r.Prefix)
	case len(r.Prefix) > 1 && strings.HasSuffix(r.Prefix, "/"):
		return "the path may not end in / (except the root)"
	}
	return ""
}

// hasDotSegment reports whether path has a "." or ".." segment, which a
// request path never has once cleaned.
func hasDotSegment(path string) bool {
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// Matches reports whether the request for host (lowercase, without port)
// and path takes route r.
func (r HTTPRoute) Matches(host, path string) bool {
	if r.Host != "" && r.Host != host {
		return false
	}
	return PathUnder(path, r.Prefix)
}

// PathUnder reports whether path is prefix or lies under it.
func PathUnder(path, prefix string) bool {
	if prefix == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == prefix || strings.HasPrefix(path, prefix) && path[len(prefix)] == '/'
}

// Probe kinds: how the runner checks that an instance is ready or healthy.
const (
	ProbeNone = "none"
	ProbeTCP  = "tcp"
	ProbeHTTP = "http"
)

// Probe is a parsed readiness or health check: none, tcp (PORT accepts a
// connection), or http with a path (a GET answers 2xx).
type Probe struct {
	Kind string
	Path string
}

// ParseProbe reads --ready and --health: "none", "tcp", "http" (GET /) or
// "http:/PATH".
func ParseProbe(s string) (Probe, error) {
	kind, path, hasPath := strings.Cut(s, ":")
	switch {
	case kind == ProbeNone && !hasPath, kind == ProbeTCP && !hasPath:
		return Probe{Kind: kind}, nil
	case kind == ProbeHTTP:
		if !hasPath {
			path = "/"
		}
		if !strings.HasPrefix(path, "/") || len(path) > MaxPathLength || strings.ContainsAny(path, " \t\r\n\x00#") {
			return Probe{}, fmt.Errorf("probe %q: the path must start with / and hold no spaces or # (at most %d bytes)", s, MaxPathLength)
		}
		return Probe{Kind: ProbeHTTP, Path: path}, nil
	}
	return Probe{}, fmt.Errorf("probe %q: want none, tcp or http:/PATH", s)
}

// String writes p as ParseProbe reads it.
func (p Probe) String() string {
	if p.Kind == ProbeHTTP {
		return "http:" + p.Path
	}
	return p.Kind
}

// NeedsPort reports whether a daemon with these settings needs a PORT: it
// has HTTP routes, or a probe that connects to PORT.
func (s AppSpec) NeedsPort() bool {
	return len(s.HTTP) > 0 || (s.Ready != "" && s.Ready != ProbeNone) || s.Health != ""
}

// ReadyProbe returns the spec's readiness probe (after WithDefaults); a
// stored spec with a bad one gets none.
func (s AppSpec) ReadyProbe() Probe {
	p, err := ParseProbe(s.Ready)
	if err != nil {
		return Probe{Kind: ProbeNone}
	}
	return p
}

// HealthProbe returns the spec's health check; Kind none when it has none.
func (s AppSpec) HealthProbe() Probe {
	if s.Health == "" {
		return Probe{Kind: ProbeNone}
	}
	p, err := ParseProbe(s.Health)
	if err != nil {
		return Probe{Kind: ProbeNone}
	}
	return p
}

// daemonHTTP checks the routes, probes and rollout settings of s.
func (c specCheck) daemonHTTP(s *AppSpec) error {
	if s.Kind != KindDaemon {
		if len(s.HTTP) > 0 || s.Health != "" || (s.Ready != "" && s.Ready != ProbeNone) {
			return c.bad("http", "set", "none for a lambda (it is reached at /NAME)")
		}
		return nil
	}
	if len(s.HTTP) > MaxRoutes {
		return c.bad("http", fmt.Sprintf("%d routes", len(s.HTTP)), fmt.Sprintf("at most %d", MaxRoutes))
	}
	seen := map[HTTPRoute]bool{}
	for i, r := range s.HTTP {
		if msg := r.check(); msg != "" {
			return c.bad(fmt.Sprintf("http[%d]", i), quote(r.String()), "/PREFIX or HOST/PREFIX: "+msg)
		}
		if seen[r] {
			return c.bad(fmt.Sprintf("http[%d]", i), quote(r.String()), "each route once")
		}
		seen[r] = true
	}
	if s.Ready != "" {
		if _, err := ParseProbe(s.Ready); err != nil {
			return c.bad("ready", quote(s.Ready), "none, tcp or http:/PATH")
		}
	}
	if s.Health != "" {
		if p, err := ParseProbe(s.Health); err != nil || p.Kind == ProbeNone {
			return c.bad("health", quote(s.Health), "tcp or http:/PATH")
		}
	}
	if err := c.durRange("ready_timeout", s.ReadyTimeout, MinProbeInterval, MaxProbeInterval); err != nil {
		return err
	}
	if err := c.durRange("health_interval", s.HealthInterval, MinProbeInterval, MaxProbeInterval); err != nil {
		return err
	}
	if err := c.intRange("health_failures", s.HealthFailures, 1, MaxHealthFailures); err != nil {
		return err
	}
	return c.intRange("parallel", s.Parallel, 1, MaxInstances)
}

// httpDefaults fills the daemon's HTTP settings left zero.
func (s *AppSpec) httpDefaults() {
	if s.Kind != KindDaemon {
		return
	}
	if s.Ready == "" {
		s.Ready = ProbeNone
		if len(s.HTTP) > 0 {
			s.Ready = ProbeTCP
		}
	}
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = Duration(DefaultReadyTimeout)
	}
	if s.HealthInterval == 0 {
		s.HealthInterval = Duration(DefaultHealthInterval)
	}
	if s.HealthFailures == 0 {
		s.HealthFailures = DefaultHealthFailures
	}
	if s.Parallel == 0 {
		s.Parallel = DefaultParallel
	}
}

// GatewayDrainSubject is where a runner asks every server's HTTP gateway to
// stop sending requests to an instance's address and to say when the
// requests it sent there have finished (see GatewayDrainRequest).
const GatewayDrainSubject = "dartup.gateway.drain"

// GatewayDrainRequest asks the gateways to take Address out of their routes
// and to answer, within Wait, when nothing they sent it is in flight.
type GatewayDrainRequest struct {
	Address string `json:"address"`
	// PID is the worker's: a new worker at the same address (a fixed
	// port) is routed to as soon as it is ready.
	PID  int      `json:"pid,omitempty"`
	Wait Duration `json:"wait"`
}

// GatewayDrainReply is a gateway's answer: at once with its requests in
// flight to the address (Done when none), then, if there were some, once
// more with Done when they have finished or the wait is over.
type GatewayDrainReply struct {
	Gateway  string `json:"gateway"`
	InFlight int    `json:"in_flight"`
	Done     bool   `json:"done"`
}

// GatewayPath says why path is the gateway's own (/healthz, /metrics, /ui
// and what is under them), or "" when an app may have it. /healthz and /ui
// are the gateway's on every host name; /metrics is an app's on a host that
// an app routes (api.example.com/metrics).
func GatewayPath(path string) string {
	switch {
	case PathUnder(path, "/healthz"):
		return "/healthz is the gateway's own health check"
	case PathUnder(path, "/metrics"):
		return "/metrics is the gateway's Prometheus metrics"
	case PathUnder(path, "/ui"):
		return "/ui is the gateway's dashboard"
	}
	return ""
}

// gatewayPathHosts says on which hosts the gateway keeps path.
func gatewayPathHosts(path string) string {
	if PathUnder(path, "/metrics") {
		return " (route the app by host, e.g. api.example.com/metrics)"
	}
	return ", on every host name"
}
