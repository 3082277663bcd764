package clientsdk_test

import (
	"maps"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

func TestParseFunctionRoute(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         string // "" when refused
	}{
		{"get", "/hello", "GET /hello"},
		{"*", "/", "ANY /"},
		{"POST", "/users/{id}/posts/{post_id}", "POST /users/{id}/posts/{post_id}"},
		{"GET", "/files/{proxy+}", "GET /files/{proxy+}"},
		{"FETCH", "/x", ""},
		{"GET", "hello", ""},
		{"GET", "/a/", ""},
		{"GET", "/a//b", ""},
		{"GET", "/a/../b", ""},
		{"GET", "/healthz", ""},
		{"GET", "/ui/api", ""},
		{"POST", "/metrics", ""},
		{"GET", "/{proxy+}/x", ""},
		{"GET", "/u/{id}/{id}", ""},
		{"GET", "/u/x{id}", ""},
		{"GET", "/u/{}", ""},
		{"GET", "/u/{a.b}", ""},
		{"GET", "/a?b", ""},
	} {
		r, err := clientsdk.ParseFunctionRoute(tc.method, tc.path)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s %s: accepted as %s, want refused", tc.method, tc.path, r)
		case tc.want != "" && err != nil:
			t.Errorf("%s %s: %v", tc.method, tc.path, err)
		case tc.want != "" && r.String() != tc.want:
			t.Errorf("%s %s: got %s, want %s", tc.method, tc.path, r, tc.want)
		}
	}
}

func TestFunctionRouteMatchPath(t *testing.T) {
	for _, tc := range []struct {
		route, path string
		ok          bool
		params      map[string]string
	}{
		{"/hello", "/hello", true, nil},
		{"/hello", "/hello/x", false, nil},
		{"/hello", "/hello/", false, nil},
		{"/users/{id}", "/users/42/", false, nil},
		{"/files/{proxy+}", "/files/a/", false, nil},
		{"/hello", "/hell", false, nil},
		{"/", "/", true, nil},
		{"/", "/x", false, nil},
		{"/users/{id}", "/users/42", true, map[string]string{"id": "42"}},
		{"/users/{id}", "/users", false, nil},
		{"/users/{id}", "/users/42/x", false, nil},
		{"/users/{id}/posts/{p}", "/users/1/posts/2", true, map[string]string{"id": "1", "p": "2"}},
		{"/files/{proxy+}", "/files/a/b/c", true, map[string]string{"proxy": "a/b/c"}},
		{"/files/{proxy+}", "/files", false, nil},
		{"/{proxy+}", "/anything/at/all", true, map[string]string{"proxy": "anything/at/all"}},
	} {
		params, ok := clientsdk.FunctionRoute{Method: "GET", Path: tc.route}.MatchPath(tc.path)
		if ok != tc.ok || !maps.Equal(params, tc.params) {
			t.Errorf("%s on %s: got %v %v, want %v %v", tc.route, tc.path, ok, params, tc.ok, tc.params)
		}
	}
}

func TestSamePath(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"/users/{id}", "/users/{name}", true},
		{"/users/{id}", "/users/me", false},
		{"/f/{p+}", "/f/{q+}", true},
		{"/f/{p+}", "/f/{q}", false},
		{"/", "/", true},
	} {
		if got := clientsdk.SamePath(tc.a, tc.b); got != tc.same {
			t.Errorf("SamePath(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestFunctionRoutesValidated(t *testing.T) {
	base := clientsdk.AppSpec{Name: "f", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"}}
	for _, tc := range []struct {
		routes []clientsdk.FunctionRoute
		ok     bool
	}{
		{[]clientsdk.FunctionRoute{{"GET", "/a"}, {"POST", "/a"}}, true},
		{[]clientsdk.FunctionRoute{{"GET", "/a/{x}"}, {"GET", "/a/{y}"}}, false},
		{[]clientsdk.FunctionRoute{{"ANY", "/a"}, {"GET", "/a"}}, false},
		{[]clientsdk.FunctionRoute{{"get", "/a"}}, false}, // stored specs hold upper case
	} {
		s := base
		s.Lambda = &clientsdk.LambdaSpec{Routes: tc.routes}
		s = s.WithDefaults()
		if err := s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%v: err %v, want ok %v", tc.routes, err, tc.ok)
		}
	}
}

func TestAsyncDestinationsValidated(t *testing.T) {
	for dest, ok := range map[string]bool{
		"orders.done": true, "dartup.async.other": true, "dartup.async.f": false, "dartup.async.a.b": false,
		"dartup.api.push": false, "$JS.API.STREAM.DELETE.X": false, "_INBOX.x": false, "a.*": false,
	} {
		s := clientsdk.AppSpec{Name: "f", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"},
			Lambda: &clientsdk.LambdaSpec{Async: &clientsdk.AsyncSpec{OnSuccess: dest}}}
		s = s.WithDefaults()
		if err := s.Validate(); (err == nil) != ok {
			t.Errorf("on_success %q: %v, want ok %v", dest, err, ok)
		}
	}
}
