package broker

import (
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

func daemonWith(name string, routes ...string) clientsdk.AppSpec {
	s := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindDaemon}
	for _, r := range routes {
		rt, err := clientsdk.ParseRoute(r)
		if err != nil {
			panic(err)
		}
		s.HTTP = append(s.HTTP, rt)
	}
	return s
}

func TestRouteMatching(t *testing.T) {
	apps := map[string]clientsdk.AppSpec{
		"web":   daemonWith("web", "/"),
		"shop":  daemonWith("shop", "/shop"),
		"api":   daemonWith("api", "api.example.com/"),
		"apiv2": daemonWith("apiv2", "api.example.com/v2"),
		"hello": {Name: "hello", Kind: clientsdk.KindLambda},
		"quiet": daemonWith("quiet"),
	}
	table := buildRoutes(apps)
	for _, c := range []struct {
		host, path, want string
	}{
		{"localhost:2374", "/", "web"},
		{"localhost", "/anything/else", "web"},
		{"localhost", "/shop", "shop"},
		{"localhost", "/shop/cart", "shop"},
		{"localhost", "/shopping", "web"},
		{"localhost", "/hello", "hello"},
		{"localhost", "/hello/world", "hello"},
		{"localhost", "/helloworld", "web"},
		{"api.example.com", "/users", "api"},
		{"API.Example.com:443", "/users", "api"},
		{"api.example.com.", "/v2/users", "apiv2"},
		{"api.example.com", "/v2", "apiv2"},
		{"api.example.com", "/shop", "api"}, // the host's routes come first
		{"api.example.com", "/hello", "api"},
		{"other.example.com", "/v2", "web"},
	} {
		got, ok := table.match(c.host, "GET", c.path)
		if !ok || got.route.app != c.want {
			t.Errorf("%s%s: got %v (%v), want %s", c.host, c.path, got.route, ok, c.want)
		}
	}
	if _, ok := buildRoutes(map[string]clientsdk.AppSpec{"shop": daemonWith("shop", "/shop")}).match("h", "GET", "/"); ok {
		t.Error("/ matched although only /shop is routed")
	}
}

func TestRouteConflicts(t *testing.T) {
	apps := map[string]clientsdk.AppSpec{
		"web":   daemonWith("web", "/", "www.example.com/"),
		"hello": {Name: "hello", Kind: clientsdk.KindLambda},
	}
	for _, c := range []struct {
		spec  clientsdk.AppSpec
		taken bool
	}{
		{daemonWith("other", "/"), true},
		{daemonWith("other", "www.example.com/"), true},
		{daemonWith("other", "/hello"), true},
		{daemonWith("web", "/"), false}, // its own routes
		{daemonWith("other", "/shop", "api.example.com/"), false},
		{daemonWith("other", "www.example.com/hello"), false},
		{clientsdk.AppSpec{Name: "shop", Kind: clientsdk.KindLambda}, false},
		{clientsdk.AppSpec{Name: "hello", Kind: clientsdk.KindLambda}, false},
	} {
		err := routeConflict(c.spec, apps)
		if (err != nil) != c.taken {
			t.Errorf("%s %v: conflict %v, want %v", c.spec.Name, c.spec.HTTP, err, c.taken)
		}
		if e, ok := clientsdk.AsError(err); err != nil && (!ok || e.Code != 409) {
			t.Errorf("conflict error %v is not a 409", err)
		}
	}
	lambdaOnDaemonRoute := routeConflict(clientsdk.AppSpec{Name: "shop", Kind: clientsdk.KindLambda},
		map[string]clientsdk.AppSpec{"store": daemonWith("store", "/shop")})
	if lambdaOnDaemonRoute == nil {
		t.Error("a lambda whose /NAME is a daemon's route was not refused")
	}
}

func TestIsBasic(t *testing.T) {
	for v, want := range map[string]bool{"Basic YTpi": true, "basic YTpi": true, "BASIC\tYTpi": true, "Basic": true, " Basic x": true,
		"Bearer abc": false, "Basicx abc": false, "": false, "Digest username=x": false} {
		if isBasic(v) != want {
			t.Errorf("isBasic(%q) = %v, want %v", v, !want, want)
		}
	}
}
