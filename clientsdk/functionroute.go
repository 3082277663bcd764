package clientsdk

import (
	"fmt"
	"slices"
	"strings"
)

// FunctionRoute is an HTTP route of a lambda, as a deploy file's
// `events: - http: {path, method}` declares it: requests whose method is
// Method (any method for "ANY") and whose path matches Path go to the
// function. A segment of Path may be a parameter: {id} takes one segment,
// and a last {proxy+} takes the rest of the path (one or more segments).
// The HTTP gateway passes Path as API Gateway v1's resource and the
// parameters' values as its pathParameters.
type FunctionRoute struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

// String writes the route as `dartup routes` shows it: "GET /users/{id}".
func (r FunctionRoute) String() string { return r.Method + " " + r.Path }

// RouteMethods are the methods a FunctionRoute may name; "ANY" takes all.
var RouteMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"}

// MaxFunctionRoutes bounds a lambda's routes.
const MaxFunctionRoutes = 64

// ParseFunctionRoute reads a route given as method and path (the method is
// case-insensitive; "*" means ANY), and checks it.
func ParseFunctionRoute(method, path string) (FunctionRoute, error) {
	m := strings.ToUpper(strings.TrimSpace(method))
	if m == "*" || m == "" {
		m = "ANY"
	}
	r := FunctionRoute{Method: m, Path: path}
	if msg := r.check(); msg != "" {
		return FunctionRoute{}, fmt.Errorf("http route %q: %s", method+" "+path, msg)
	}
	return r, nil
}

// check returns what is wrong with r, or "".
func (r FunctionRoute) check() string {
	if !slices.Contains(RouteMethods, r.Method) {
		return "the method is not one of " + strings.Join(RouteMethods, ", ")
	}
	p := r.Path
	switch {
	case !strings.HasPrefix(p, "/"):
		return "the path must start with /"
	case len(p) > MaxPathLength:
		return fmt.Sprintf("the path is over %d bytes", MaxPathLength)
	case strings.ContainsAny(p, "?#%* \t\r\n\x00") || strings.Contains(p, "//") || hasDotSegment(p):
		return "the path may not hold ?, #, %, *, spaces, //, . or .. segments"
	case len(p) > 1 && strings.HasSuffix(p, "/"):
		return "the path may not end in / (except the root)"
	case GatewayPath(p) != "":
		return GatewayPath(p)
	}
	segs := routeSegments(p)
	seen := map[string]bool{}
	for i, s := range segs {
		name, param, greedy := routeParam(s)
		switch {
		case !param && strings.ContainsAny(s, "{}"):
			return fmt.Sprintf("segment %q: a parameter is a whole segment, {name} or {name+}", s)
		case !param:
			continue
		case name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "":
			return fmt.Sprintf("segment %q: a parameter's name holds letters, digits, '_' and '-'", s)
		case seen[name]:
			return fmt.Sprintf("parameter {%s} appears twice", name)
		case greedy && i != len(segs)-1:
			return fmt.Sprintf("{%s+} takes the rest of the path: it must be the last segment", name)
		}
		seen[name] = true
	}
	return ""
}

// routeSegments splits a path into its segments ("/" has none).
func routeSegments(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// routeParam says whether segment s is a parameter {name} or {name+}.
func routeParam(s string) (name string, param, greedy bool) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return "", false, false
	}
	name = s[1 : len(s)-1]
	if strings.HasSuffix(name, "+") {
		return strings.TrimSuffix(name, "+"), true, true
	}
	return name, true, false
}

// MatchPath reports whether a request path (cleaned, starting with /)
// matches the route's path, and returns the parameters' values (nil when
// the route has none). A parameter's value is the segment as it came,
// still percent-encoded as the request line had it only if the caller
// passes the raw path.
func (r FunctionRoute) MatchPath(path string) (map[string]string, bool) {
	if len(path) > 1 && strings.HasSuffix(path, "/") {
		return nil, false // "/hello/" is not "/hello" (a route never ends in /)
	}
	want, got := routeSegments(r.Path), routeSegments(path)
	var params map[string]string
	for i, w := range want {
		name, param, greedy := routeParam(w)
		switch {
		case i >= len(got):
			return nil, false
		case greedy:
			if params == nil {
				params = map[string]string{}
			}
			params[name] = strings.Join(got[i:], "/")
			return params, true
		case param:
			if got[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[name] = got[i]
		case w != got[i]:
			return nil, false
		}
	}
	if len(got) != len(want) {
		return nil, false
	}
	return params, true
}

// Specificity orders routes for matching: more literal segments first, then
// more segments, then single parameters before a greedy one. Larger is
// more specific.
func (r FunctionRoute) Specificity() (literals, segments int, greedy bool) {
	for _, s := range routeSegments(r.Path) {
		_, param, g := routeParam(s)
		if !param {
			literals++
		}
		greedy = greedy || g
		segments++
	}
	return literals, segments, greedy
}

// SamePath reports whether two route paths match the same requests: equal
// once parameter names are ignored ("/users/{id}" and "/users/{name}").
func SamePath(a, b string) bool {
	sa, sb := routeSegments(a), routeSegments(b)
	if len(sa) != len(sb) {
		return false
	}
	for i := range sa {
		_, pa, ga := routeParam(sa[i])
		_, pb, gb := routeParam(sb[i])
		if pa != pb || ga != gb || !pa && sa[i] != sb[i] {
			return false
		}
	}
	return true
}
