package broker

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/dartup/dartup/clientsdk"
)

// route is one entry of the gateway's route table: requests for host (any
// when empty) under prefix go to app, a daemon (proxied to its ready
// instances) or a lambda (invoked).
type route struct {
	clientsdk.HTTPRoute
	app    string
	lambda bool
	strip  bool
}

// routeTable is the gateway's routes, most specific first: a route for the
// request's host before routes for any host, then the longest prefix.
type routeTable []route

// buildRoutes makes the table from the apps' specs: each daemon's --http
// routes, and /NAME for each lambda.
func buildRoutes(apps map[string]clientsdk.AppSpec) routeTable {
	var t routeTable
	for name, s := range apps {
		if s.Kind == clientsdk.KindLambda {
			t = append(t, route{HTTPRoute: clientsdk.HTTPRoute{Prefix: "/" + name}, app: name, lambda: true})
			continue
		}
		for _, r := range s.HTTP {
			t = append(t, route{HTTPRoute: r, app: name, strip: s.HTTPStripPrefix})
		}
	}
	slices.SortFunc(t, func(a, b route) int {
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

// match returns the route a request for host (as the Host header has it)
// and path takes, if any.
func (t routeTable) match(host, path string) (route, bool) {
	host = requestHost(host)
	for _, r := range t {
		if r.Matches(host, path) {
			return r, true
		}
	}
	return route{}, false
}

// requestHost is the Host header's host, lowercase, without port or the
// trailing dot of a fully qualified name.
func requestHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// routeConflict returns why spec's routes clash with another app's (a
// *clientsdk.Error 409), or nil: two daemons may not share a host and
// prefix, and a daemon's route for any host may not be a lambda's /NAME.
func routeConflict(spec clientsdk.AppSpec, apps map[string]clientsdk.AppSpec) error {
	for name, other := range apps {
		if name == spec.Name {
			continue
		}
		if r, ok := clash(spec, other); ok {
			return clientsdk.Errorf(409, "RouteTaken", "route %s is taken by %s %s; choose another --http, or remove %s first", r, other.Kind, name, name)
		}
	}
	return nil
}

// clash returns a route that a and b would both own.
func clash(a, b clientsdk.AppSpec) (clientsdk.HTTPRoute, bool) {
	owned := func(s clientsdk.AppSpec) []clientsdk.HTTPRoute {
		if s.Kind == clientsdk.KindLambda {
			return []clientsdk.HTTPRoute{{Prefix: "/" + s.Name}}
		}
		return s.HTTP
	}
	for _, ra := range owned(a) {
		if slices.Contains(owned(b), ra) {
			return ra, true
		}
	}
	return clientsdk.HTTPRoute{}, false
}

// String describes the route for logs.
func (r route) String() string {
	kind := "daemon"
	if r.lambda {
		kind = "lambda"
	}
	return fmt.Sprintf("%s -> %s %s", r.HTTPRoute, kind, r.app)
}

func hasHost(r route) int {
	if r.Host != "" {
		return 1
	}
	return 0
}
