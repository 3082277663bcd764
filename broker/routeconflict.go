package broker

import (
	"slices"

	"github.com/dartup/dartup/clientsdk"
)

// routeClash is why two apps' routes cannot both be in the table: the route
// the pushed app wants, the route the other app holds, and what to do.
type routeClash struct {
	want, held, hint string
}

// routeConflict returns why spec's routes clash with another app's (a
// *clientsdk.Error 409 RouteTaken naming the app that holds the route and
// what to do), or nil. See clash for the rules.
func routeConflict(spec clientsdk.AppSpec, apps map[string]clientsdk.AppSpec) error {
	for _, name := range sortedApps(apps) {
		if name == spec.Name {
			continue
		}
		other := apps[name]
		if c, ok := clash(spec, other); ok {
			held := ""
			if c.held != c.want {
				held = " (" + c.held + ")"
			}
			return clientsdk.Errorf(409, "RouteTaken", "route %s is taken by %s %s%s; %s, or remove %s first",
				c.want, other.Kind, name, held, c.hint, name)
		}
	}
	return nil
}

// clash returns a route that a (being pushed) and b would both own:
//   - two daemons' --http routes with the same host and prefix;
//   - a daemon's route for any host that is /NAME of a lambda without
//     function routes;
//   - two lambdas' function routes on the same path (parameter names aside)
//     with a method in common (ANY has every method);
//   - a function route whose path is /NAME, or lies under it, of a lambda
//     without function routes (one of them would never be reached).
//
// Overlaps that the match order resolves are allowed, as in API Gateway:
// "/{proxy+}" beside "/users/{id}", or a function route on a daemon's
// prefix (the function route is tried first).
func clash(a, b clientsdk.AppSpec) (routeClash, bool) {
	fa, fb := functionRoutes(a), functionRoutes(b)
	for _, ra := range fa {
		for _, rb := range fb {
			if clientsdk.SamePath(ra.Path, rb.Path) && methodsOverlap(ra.Method, rb.Method) {
				return routeClash{ra.String(), rb.String(), "choose another method or path for " + a.Name}, true
			}
		}
		if isPlainLambda(b) && clientsdk.PathUnder(ra.Path, "/"+b.Name) {
			return routeClash{ra.String(), "/" + b.Name + " and the paths under it: it has no function routes",
				"choose a path outside /" + b.Name + ", give " + b.Name + " function routes"}, true
		}
	}
	if isPlainLambda(a) {
		for _, rb := range fb {
			if clientsdk.PathUnder(rb.Path, "/"+a.Name) {
				return routeClash{"/" + a.Name, rb.String() + " lies under it", "give " + a.Name + " function routes or another name"}, true
			}
		}
	}
	pb := prefixRoutes(b)
	for _, ra := range prefixRoutes(a) {
		if slices.Contains(pb, ra) {
			hint := "choose another --http"
			if a.Kind == clientsdk.KindLambda {
				hint = "rename the lambda or give it function routes"
			}
			return routeClash{ra.String(), ra.String(), hint}, true
		}
	}
	return routeClash{}, false
}

// functionRoutes are a lambda's function routes (none for a daemon).
func functionRoutes(s clientsdk.AppSpec) []clientsdk.FunctionRoute {
	if s.Kind != clientsdk.KindLambda || s.Lambda == nil {
		return nil
	}
	return s.Lambda.Routes
}

// isPlainLambda reports whether s is a lambda without function routes: the
// gateway routes /NAME to it.
func isPlainLambda(s clientsdk.AppSpec) bool {
	return s.Kind == clientsdk.KindLambda && len(functionRoutes(s)) == 0
}

// prefixRoutes are the prefix routes an app owns: a daemon's --http
// routes, or /NAME of a lambda without function routes.
func prefixRoutes(s clientsdk.AppSpec) []clientsdk.HTTPRoute {
	switch {
	case isPlainLambda(s):
		return []clientsdk.HTTPRoute{{Prefix: "/" + s.Name}}
	case s.Kind == clientsdk.KindLambda:
		return nil
	}
	return s.HTTP
}

// methodsOverlap reports whether two route methods share a method.
func methodsOverlap(a, b string) bool { return a == b || a == "ANY" || b == "ANY" }
