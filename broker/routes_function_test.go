package broker

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

// lambdaWith is a lambda spec with function routes given as "METHOD /path".
func lambdaWith(name string, routes ...string) clientsdk.AppSpec {
	s := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Lambda: &clientsdk.LambdaSpec{}}
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		fr, err := clientsdk.ParseFunctionRoute(method, path)
		if err != nil {
			panic(err)
		}
		s.Lambda.Routes = append(s.Lambda.Routes, fr)
	}
	return s
}

func appsOf(specs ...clientsdk.AppSpec) map[string]clientsdk.AppSpec {
	m := map[string]clientsdk.AppSpec{}
	for _, s := range specs {
		m[s.Name] = s
	}
	return m
}

// Function routes: the most specific route that takes the method; a 405
// with the allowed methods when routes match the path but none the method,
// never swallowed by a daemon; /NAME of a lambda without routes beats a
// route that begins with a parameter; the rest falls through to prefixes.
func TestFunctionRouteMatching(t *testing.T) {
	withCatchAll := buildRoutes(appsOf(
		daemonWith("web", "/"),
		daemonWith("api", "api.example.com/"),
		lambdaWith("hello", "GET /hello"),
		lambdaWith("post", "POST /postRequest"),
		lambdaWith("users", "GET /users/{id}", "DELETE /users/{id}", "GET /users/me"),
		lambdaWith("files", "ANY /files/{proxy+}"),
		lambdaWith("catch", "GET /{proxy+}"),
		clientsdk.AppSpec{Name: "legacy", Kind: clientsdk.KindLambda},
	))
	without := buildRoutes(appsOf(
		daemonWith("api", "api.example.com/"),
		daemonWith("shop", "/shop"),
		lambdaWith("hello", "GET /hello"),
		lambdaWith("users", "GET /users/{id}"),
		clientsdk.AppSpec{Name: "legacy", Kind: clientsdk.KindLambda},
	))
	type want struct {
		app    string // "" with allow: 405; "" without: no route
		allow  string
		params map[string]string
	}
	for _, c := range []struct {
		table              *routeTable
		host, method, path string
		want               want
	}{
		{withCatchAll, "h", "GET", "/hello", want{app: "hello"}},
		{withCatchAll, "h", "POST", "/hello", want{allow: "GET"}},
		{withCatchAll, "h", "HEAD", "/hello", want{allow: "GET"}},
		{withCatchAll, "api.example.com", "GET", "/hello", want{app: "hello"}}, // before the host's daemon
		{withCatchAll, "h", "POST", "/postRequest", want{app: "post"}},
		{withCatchAll, "h", "GET", "/postRequest", want{app: "catch", params: map[string]string{"proxy": "postRequest"}}},
		{withCatchAll, "h", "PUT", "/postRequest", want{allow: "GET, POST"}},
		{withCatchAll, "h", "GET", "/users/42", want{app: "users", params: map[string]string{"id": "42"}}},
		{withCatchAll, "h", "GET", "/users/me", want{app: "users"}},
		{withCatchAll, "h", "DELETE", "/users/me", want{app: "users", params: map[string]string{"id": "me"}}},
		{withCatchAll, "h", "PATCH", "/users/42", want{allow: "DELETE, GET"}},
		{withCatchAll, "h", "GET", "/users/a%2Fb", want{app: "users", params: map[string]string{"id": "a/b"}}},
		{withCatchAll, "h", "GET", "/users/caf%C3%A9%20x", want{app: "users", params: map[string]string{"id": "café x"}}},
		{withCatchAll, "h", "GET", "/us%65rs/7", want{app: "users", params: map[string]string{"id": "7"}}},
		{withCatchAll, "h", "POST", "/files/a/b%2Fc/d", want{app: "files", params: map[string]string{"proxy": "a/b/c/d"}}},
		{withCatchAll, "h", "GET", "/files", want{app: "catch", params: map[string]string{"proxy": "files"}}},
		{withCatchAll, "h", "GET", "/legacy/x", want{app: "legacy"}},
		{withCatchAll, "h", "POST", "/legacy", want{app: "legacy"}},
		{withCatchAll, "h", "GET", "/other/page", want{app: "catch", params: map[string]string{"proxy": "other/page"}}},
		{withCatchAll, "h", "POST", "/other", want{allow: "GET"}},
		{withCatchAll, "h", "GET", "/", want{app: "web"}},
		{without, "h", "GET", "/nothing", want{}},
		{without, "api.example.com", "GET", "/nothing", want{app: "api"}},
		{without, "api.example.com", "DELETE", "/hello", want{allow: "GET"}},
		{without, "h", "GET", "/shop/x", want{app: "shop"}},
		{without, "h", "GET", "/users/1/2", want{}},
		{without, "h", "GET", "/users", want{}},
		{without, "h", "GET", "/hello/x", want{}},
		{without, "h", "GET", "/legacy", want{app: "legacy"}},
	} {
		got, ok := c.table.match(c.host, c.method, c.path)
		name := c.method + " " + c.host + c.path
		switch {
		case c.want.app == "" && c.want.allow == "":
			if ok {
				t.Errorf("%s: took %v %v, want no route", name, got.route, got.allow)
			}
		case c.want.allow != "":
			if !ok || strings.Join(got.allow, ", ") != c.want.allow {
				t.Errorf("%s: %v %v, want 405 allowing %s", name, got.route, got.allow, c.want.allow)
			}
		case !ok || got.allow != nil || got.route.app != c.want.app || !maps.Equal(got.params, c.want.params):
			t.Errorf("%s: %v %v %v, want %s %v", name, got.route, got.allow, got.params, c.want.app, c.want.params)
		}
	}
}

// The function routes are tried most specific first, in an order that does
// not depend on the apps' map.
func TestFunctionRouteOrder(t *testing.T) {
	apps := appsOf(
		lambdaWith("hello", "GET /hello"),
		lambdaWith("post", "POST /postRequest"),
		lambdaWith("users", "GET /users/{id}", "DELETE /users/{id}", "GET /users/me", "GET /{kind}/me"),
		lambdaWith("files", "ANY /files/{proxy+}"),
		lambdaWith("catch", "GET /{proxy+}", "ANY /{a}/{b}"),
	)
	want := []string{"GET /users/me", "DELETE /users/{id}", "GET /users/{id}", "GET /{kind}/me", "ANY /files/{proxy+}",
		"GET /hello", "POST /postRequest", "ANY /{a}/{b}", "GET /{proxy+}"}
	for range 20 {
		var got []string
		for _, r := range buildRoutes(apps).functions {
			got = append(got, r.fn.String())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("order:\n got %q\nwant %q", got, want)
		}
	}
}

// Pushes whose routes another app holds are refused with 409 RouteTaken
// naming that app; overlaps the match order resolves are allowed.
func TestFunctionRouteConflicts(t *testing.T) {
	apps := appsOf(
		lambdaWith("hello", "GET /hello", "ANY /things/{id}"),
		clientsdk.AppSpec{Name: "legacy", Kind: clientsdk.KindLambda},
		daemonWith("web", "/"),
	)
	for _, c := range []struct {
		spec clientsdk.AppSpec
		held string // in the message; "" when allowed
	}{
		{lambdaWith("x", "GET /hello"), "lambda hello"},
		{lambdaWith("x", "POST /hello"), ""},
		{lambdaWith("x", "ANY /hello"), "lambda hello"},
		{lambdaWith("x", "GET /things/{name}"), "lambda hello (ANY /things/{id})"},
		{lambdaWith("x", "GET /things/{id}/sub"), ""},
		{lambdaWith("x", "GET /things/mine"), ""},
		{lambdaWith("x", "GET /{proxy+}"), ""},
		{lambdaWith("x", "GET /legacy"), "lambda legacy"},
		{lambdaWith("x", "PUT /legacy/{id}"), "lambda legacy"},
		{lambdaWith("x", "GET /legacyx"), ""},
		{lambdaWith("x", "GET /"), ""},
		{lambdaWith("hello", "GET /hello"), ""},
		{lambdaWith("legacy", "GET /legacy"), ""},
		{clientsdk.AppSpec{Name: "things", Kind: clientsdk.KindLambda}, "lambda hello (ANY /things/{id} lies under it)"},
		{clientsdk.AppSpec{Name: "web2", Kind: clientsdk.KindLambda}, ""},
		{daemonWith("d", "/legacy"), "lambda legacy"},
		{daemonWith("d", "/hello"), ""},
		{daemonWith("d", "/"), "daemon web"},
	} {
		err := routeConflict(c.spec, apps)
		desc := c.spec.Name + " " + strings.Join(routeStrings(c.spec), " ")
		if c.held == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", desc, err)
			}
			continue
		}
		e, ok := clientsdk.AsError(err)
		if !ok || e.Code != 409 || e.Type != "RouteTaken" || !strings.Contains(e.Message, "taken by "+c.held) || !strings.Contains(e.Message, "first") {
			t.Errorf("%s: %v, want 409 RouteTaken by %s", desc, err, c.held)
		}
	}
}

func routeStrings(s clientsdk.AppSpec) []string {
	var out []string
	var routes []clientsdk.FunctionRoute
	if s.Lambda != nil {
		routes = s.Lambda.Routes
	}
	for _, r := range routes {
		out = append(out, r.String())
	}
	for _, r := range s.HTTP {
		out = append(out, r.String())
	}
	return out
}
