package clientsdk

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseRouteAndProbe(t *testing.T) {
	for in, want := range map[string]HTTPRoute{
		"/": {Prefix: "/"}, "/shop": {Prefix: "/shop"}, "/shop/": {Prefix: "/shop"}, "Api.Example.com": {Host: "api.example.com", Prefix: "/"},
		"api.example.com/v2": {Host: "api.example.com", Prefix: "/v2"},
	} {
		if got, err := ParseRoute(in); err != nil || got != want {
			t.Errorf("ParseRoute(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "shop", "/a b", "/a?b", "/a//b", "/a/../b", "/a/./b", "/a/.", "/healthz", "/healthz/x", "/ui", "/ui/x", "/metrics", "api.example.com/healthz", "api.example.com/ui/x", "http://x/", "x:80/", "/%2e", "-x/", strings.Repeat("a", 300) + "/"} {
		if _, err := ParseRoute(bad); err == nil {
			t.Errorf("ParseRoute(%q) accepted", bad)
		}
	}
	for in, want := range map[string]Probe{"none": {Kind: ProbeNone}, "tcp": {Kind: ProbeTCP}, "http": {Kind: ProbeHTTP, Path: "/"},
		"http:/healthz": {Kind: ProbeHTTP, Path: "/healthz"}} {
		if got, err := ParseProbe(in); err != nil || got != want {
			t.Errorf("ParseProbe(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "udp", "tcp:80", "http:healthz", "http:/a b", "none:x"} {
		if _, err := ParseProbe(bad); err == nil {
			t.Errorf("ParseProbe(%q) accepted", bad)
		}
	}
	s := AppSpec{Name: "web", Kind: KindDaemon, HTTP: []HTTPRoute{{Prefix: "/"}}}.WithDefaults()
	if s.Ready != ProbeTCP || s.ReadyTimeout.D() != DefaultReadyTimeout || s.Parallel != 1 || !s.NeedsPort() {
		t.Errorf("defaults of an HTTP daemon: %+v", s)
	}
	for _, mod := range []func(*AppSpec){
		func(s *AppSpec) { s.HTTP = append(s.HTTP, s.HTTP[0]) },
		func(s *AppSpec) { s.Ready = "udp" },
		func(s *AppSpec) { s.Health = "none" },
		func(s *AppSpec) { s.HealthFailures = 0 },
		func(s *AppSpec) { s.Parallel = MaxInstances + 1 },
		func(s *AppSpec) { s.ReadyTimeout = Duration(time.Millisecond) },
		func(s *AppSpec) { s.Kind, s.Lambda = KindLambda, &LambdaSpec{} },
	} {
		bad := s
		bad.HTTP = slices.Clone(s.HTTP)
		mod(&bad)
		if bad.Kind == KindLambda {
			bad = bad.WithDefaults()
		}
		if err := bad.ValidateBounds(); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
