package clientsdk

import "slices"

// RouteClash is why two apps' routes cannot both be in the gateway's
// table: the route the app being pushed wants, the route the other app
// holds, and what to do.
type RouteClash struct {
	Want, Held, Hint string
}

// ClashOf returns a route that a (being pushed) and b would both own:
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
// prefix (the function route is tried first). The server refuses a push
// that clashes (409 RouteTaken); `dartup deploy` checks its file with it
// before it changes anything.
func ClashOf(a, b AppSpec) (RouteClash, bool) {
	fa, fb := functionRoutesOf(a), functionRoutesOf(b)
	for _, ra := range fa {
		for _, rb := range fb {
			if SamePath(ra.Path, rb.Path) && methodsOverlap(ra.Method, rb.Method) {
				return RouteClash{ra.String(), rb.String(), "choose another method or path for " + a.Name}, true
			}
		}
		if isPlainLambda(b) && PathUnder(ra.Path, "/"+b.Name) {
			return RouteClash{ra.String(), "/" + b.Name + " and the paths under it: it has no function routes",
				"choose a path outside /" + b.Name + ", give " + b.Name + " function routes"}, true
		}
	}
	if isPlainLambda(a) {
		for _, rb := range fb {
			if PathUnder(rb.Path, "/"+a.Name) {
				return RouteClash{"/" + a.Name, rb.String() + " lies under it", "give " + a.Name + " function routes or another name"}, true
			}
		}
	}
	pb := prefixRoutesOf(b)
	for _, ra := range prefixRoutesOf(a) {
		if slices.Contains(pb, ra) {
			hint := "choose another --http"
			if a.Kind == KindLambda {
				hint = "rename the lambda or give it function routes"
			}
			return RouteClash{ra.String(), ra.String(), hint}, true
		}
	}
	return RouteClash{}, false
}

// functionRoutesOf are a lambda's function routes (none for a daemon).
func functionRoutesOf(s AppSpec) []FunctionRoute {
	if s.Kind != KindLambda || s.Lambda == nil {
		return nil
	}
	return s.Lambda.Routes
}

// isPlainLambda reports whether s is a lambda without function routes: the
// gateway routes /NAME to it.
func isPlainLambda(s AppSpec) bool {
	return s.Kind == KindLambda && len(functionRoutesOf(s)) == 0
}

// prefixRoutesOf are the prefix routes an app owns: a daemon's --http
// routes, or /NAME of a lambda without function routes.
func prefixRoutesOf(s AppSpec) []HTTPRoute {
	switch {
	case isPlainLambda(s):
		return []HTTPRoute{{Prefix: "/" + s.Name}}
	case s.Kind == KindLambda:
		return nil
	}
	return s.HTTP
}

// methodsOverlap reports whether two route methods share a method.
func methodsOverlap(a, b string) bool { return a == b || a == "ANY" || b == "ANY" }

// RouteOwners rebuilds, from the gateway's table (Client.Routes), the part
// of each app's spec that owns routes: its kind, its function routes or
// /NAME, a daemon's prefix routes. ClashOf takes them.
func RouteOwners(table []RouteInfo) map[string]AppSpec {
	out := map[string]AppSpec{}
	for _, r := range table {
		s, ok := out[r.App]
		if !ok {
			s = AppSpec{Name: r.App, Kind: r.Kind}
			if r.Kind == KindLambda {
				s.Lambda = &LambdaSpec{}
			}
		}
		switch {
		case r.Kind == KindLambda && !r.Prefix:
			s.Lambda.Routes = append(s.Lambda.Routes, FunctionRoute{Method: r.Method, Path: r.Path})
		case r.Kind == KindDaemon:
			s.HTTP = append(s.HTTP, HTTPRoute{Host: r.Host, Prefix: r.Path})
		}
		out[r.App] = s
	}
	return out
}
