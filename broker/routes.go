package broker

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/dartup/dartup/clientsdk"
)

// route is one entry of the gateway's route table: a function route (fn
// set: requests whose method and path match it go to lambda app), or a
// prefix route (requests for host, any when empty, under prefix go to app, a
// daemon proxied to its ready instances or a lambda invoked as /NAME).
type route struct {
	clientsdk.HTTPRoute
	fn     *clientsdk.FunctionRoute
	app    string
	lambda bool
	strip  bool
}

// routeTable is the gateway's routes in the order they are tried: the
// lambdas' function routes, most specific first, then the prefix routes
// (daemons' --http routes and /NAME of the lambdas without function
// routes), a route for the request's host before routes for any host, then
// the longest prefix.
type routeTable struct {
	functions []route
	prefixes  []route
	// plain holds the names of the lambdas without function routes: their
	// /NAME is a literal first segment, which beats a function route that
	// begins with a parameter.
	plain map[string]bool
}

// routeMatch is where a request goes: route (with the function route's
// path parameters, percent-decoded), or, when allow is set, nowhere: its
// path matches function routes but none takes its method (405).
type routeMatch struct {
	route  route
	params map[string]string
	allow  []string
}

// buildRoutes makes the table from the apps' specs: each daemon's --http
// routes, each lambda's function routes, and /NAME for each lambda without.
func buildRoutes(apps map[string]clientsdk.AppSpec) *routeTable {
	t := &routeTable{plain: map[string]bool{}}
	for name, s := range apps {
		switch {
		case s.Kind == clientsdk.KindLambda && s.Lambda != nil && len(s.Lambda.Routes) > 0:
			for _, fr := range s.Lambda.Routes {
				t.functions = append(t.functions, route{fn: &fr, app: name, lambda: true})
			}
		case s.Kind == clientsdk.KindLambda:
			t.prefixes = append(t.prefixes, route{HTTPRoute: clientsdk.HTTPRoute{Prefix: "/" + name}, app: name, lambda: true})
			t.plain[name] = true
		default:
			for _, r := range s.HTTP {
				t.prefixes = append(t.prefixes, route{HTTPRoute: r, app: name, strip: s.HTTPStripPrefix})
			}
		}
	}
	slices.SortFunc(t.functions, compareFunctionRoutes)
	slices.SortFunc(t.prefixes, func(a, b route) int {
		if c := cmp.Compare(hasHost(b), hasHost(a)); c != 0 {
			return c
		}
		if c := cmp.Compare(len(b.Prefix), len(a.Prefix)); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Prefix, b.Prefix), cmp.Compare(a.app, b.app))
	})
	return t
}

// compareFunctionRoutes orders function routes most specific first: more
// literal segments, then more segments, then single parameters before a
// {proxy+} (clientsdk.FunctionRoute.Specificity); then a literal earlier in
// the path first; then by path, a named method before ANY, and app, so that
// the order never depends on the apps' map.
func compareFunctionRoutes(a, b route) int {
	la, sa, ga := a.fn.Specificity()
	lb, sb, gb := b.fn.Specificity()
	if c := cmp.Or(cmp.Compare(lb, la), cmp.Compare(sb, sa), cmp.Compare(boolInt(ga), boolInt(gb))); c != 0 {
		return c
	}
	ka, kb := segmentKinds(a.fn.Path), segmentKinds(b.fn.Path)
	if c := slices.Compare(ka, kb); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.fn.Path, b.fn.Path), cmp.Compare(boolInt(a.fn.Method == "ANY"), boolInt(b.fn.Method == "ANY")),
		cmp.Compare(a.fn.Method, b.fn.Method), cmp.Compare(a.app, b.app))
}

// segmentKinds is 0 for each literal segment of a route path, 1 for a
// parameter and 2 for a {proxy+}.
func segmentKinds(p string) []int {
	var out []int
	for _, s := range strings.Split(strings.Trim(p, "/"), "/") {
		switch {
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "+}"):
			out = append(out, 2)
		case strings.HasPrefix(s, "{"):
			out = append(out, 1)
		default:
			out = append(out, 0)
		}
	}
	return out
}

// match returns where a request for host (as the Host header has it),
// method and path (escaped, as the request line has it) goes: a function
// route that matches the path and takes the method, or a 405 when function
// routes match the path but none takes the method; else a prefix route.
// ok is false when no route takes the request.
func (t *routeTable) match(host, method, path string) (m routeMatch, ok bool) {
	if m, ok := t.matchFunction(method, path); ok {
		return m, true
	}
	decoded, err := url.PathUnescape(path)
	if err != nil {
		decoded = path
	}
	host = requestHost(host)
	for _, r := range t.prefixes {
		if r.Matches(host, decoded) {
			return routeMatch{route: r}, true
		}
	}
	return routeMatch{}, false
}

// matchFunction tries the function routes in order. A route that begins
// with a parameter does not take paths under /NAME of a lambda without
// function routes (a literal beats a parameter there too).
func (t *routeTable) matchFunction(method, path string) (routeMatch, bool) {
	if len(t.functions) == 0 {
		return routeMatch{}, false // no function routes: no work per request
	}
	canon := canonicalPath(path)
	first, _, _ := strings.Cut(strings.TrimPrefix(canon, "/"), "/")
	plain := t.plain[first]
	var allow []string
	for _, r := range t.functions {
		if plain && strings.HasPrefix(r.fn.Path, "/{") {
			continue
		}
		params, ok := r.fn.MatchPath(canon)
		if !ok {
			continue
		}
		if r.fn.Method != "ANY" && r.fn.Method != method {
			allow = append(allow, r.fn.Method)
			continue
		}
		for k, v := range params {
			if d, err := url.PathUnescape(v); err == nil {
				params[k] = d
			}
		}
		return routeMatch{route: r, params: params}, true
	}
	if allow == nil {
		return routeMatch{}, false
	}
	slices.Sort(allow)
	return routeMatch{allow: slices.Compact(allow)}, true
}

// canonicalPath writes an escaped request path with each segment decoded,
// except that '%' and '/' inside a segment stay escaped: route literals
// (which hold neither) compare with the decoded text, an escaped slash does
// not split a segment, and one more unescape gives a parameter's value.
func canonicalPath(escaped string) string {
	segs := strings.Split(escaped, "/")
	for i, s := range segs {
		if !strings.Contains(s, "%") {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			continue
		}
		segs[i] = segmentEscaper.Replace(d)
	}
	return strings.Join(segs, "/")
}

// list writes the table in match order for the routes verb, with each
// daemon's count of ready instances from ready.
func (t *routeTable) list(ready map[string]int) []clientsdk.RouteInfo {
	out := make([]clientsdk.RouteInfo, 0, len(t.functions)+len(t.prefixes))
	for _, r := range t.functions {
		out = append(out, clientsdk.RouteInfo{Method: r.fn.Method, Path: r.fn.Path, Kind: clientsdk.KindLambda, App: r.app})
	}
	for _, r := range t.prefixes {
		ri := clientsdk.RouteInfo{Host: r.Host, Method: "*", Path: r.Prefix, Prefix: true, Kind: clientsdk.KindLambda, App: r.app}
		if !r.lambda {
			n := ready[r.app]
			ri.Kind, ri.Ready = clientsdk.KindDaemon, &n
		}
		out = append(out, ri)
	}
	return out
}

// segmentEscaper escapes what canonicalPath keeps escaped in a segment.
var segmentEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// requestHost is the Host header's host, lowercase, without port or the
// trailing dot of a fully qualified name.
func requestHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// String describes the route for logs.
func (r route) String() string {
	kind := "daemon"
	if r.lambda {
		kind = "lambda"
	}
	if r.fn != nil {
		return fmt.Sprintf("%s -> %s %s", r.fn, kind, r.app)
	}
	return fmt.Sprintf("%s -> %s %s", r.HTTPRoute, kind, r.app)
}

func hasHost(r route) int { return boolInt(r.Host != "") }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sortedApps returns the apps' names in order.
func sortedApps(apps map[string]clientsdk.AppSpec) []string {
	return slices.Sorted(maps.Keys(apps))
}
