package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// echoed is what the lambdaapigw bootstrap answers.
type echoed struct {
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Resource string            `json:"resource"`
	Params   map[string]string `json:"path_parameters"`
	Handler  string            `json:"handler"`
	Body     string            `json:"body"`
}

// routes returns a LambdaSpec modifier that sets the handler and the
// function routes ("METHOD /path").
func routes(handler string, rs ...string) func(*clientsdk.LambdaSpec) {
	return func(l *clientsdk.LambdaSpec) {
		l.Handler = handler
		for _, r := range rs {
			m, p, _ := strings.Cut(r, " ")
			l.Routes = append(l.Routes, clientsdk.FunctionRoute{Method: m, Path: p})
		}
	}
}

// Function routes through the real gateway: two functions of one
// aws-lambda-go bootstrap told apart by their handler, each on its method
// and path; 405 with Allow for another method, even with a daemon on /;
// resource and pathParameters; 404 for the rest; a conflicting push is 409;
// the routes verb lists the table in match order.
func TestFunctionRoutesThroughGateway(t *testing.T) {
	r := newLambdaRig(t)
	r.host("hello", apigwPkg, routes("main.hello", "GET /hello"))
	r.host("post", apigwPkg, routes("main.post", "POST /postRequest"))
	r.host("users", apigwPkg, routes("main.users", "GET /users/{id}"))
	r.host("legacy", apigwPkg, routes("main.legacy"))
	call := func(method, path, body string) (*http.Response, echoed) {
		t.Helper()
		resp, b := r.do(method, path, []byte(body), nil)
		var e echoed
		if resp.StatusCode == 201 {
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
		return resp, e
	}
	testutil.WaitFor(t, 10*time.Second, "the gateway to route GET /users/1", func() bool {
		resp, _ := call("GET", "/users/1", "")
		return resp.StatusCode == 201
	})
	if resp, e := call("GET", "/hello", ""); resp.StatusCode != 201 || e.Handler != "main.hello" || e.Method != "GET" || e.Path != "/hello" || e.Resource != "/hello" {
		t.Errorf("GET /hello: %d %+v", resp.StatusCode, e)
	}
	if resp, e := call("POST", "/postRequest", "payload"); resp.StatusCode != 201 || e.Handler != "main.post" || e.Body != "payload" || e.Resource != "/postRequest" {
		t.Errorf("POST /postRequest: %d %+v", resp.StatusCode, e)
	}
	if resp, e := call("GET", "/users/a%20b", ""); resp.StatusCode != 201 || e.Handler != "main.users" || e.Resource != "/users/{id}" ||
		e.Params["id"] != "a b" || len(e.Params) != 1 || e.Path != "/users/a b" {
		t.Errorf("GET /users/a%%20b: %d %+v", resp.StatusCode, e)
	}
	// A lambda without routes keeps /NAME, every method, as before.
	if resp, e := call("PUT", "/legacy/x/y", ""); resp.StatusCode != 201 || e.Handler != "main.legacy" || e.Resource != "/{proxy+}" ||
		e.Path != "/x/y" || e.Params["proxy"] != "x/y" {
		t.Errorf("PUT /legacy/x/y: %d %+v", resp.StatusCode, e)
	}
	checkRefused(t, r, "POST", "/hello", 405, "MethodNotAllowed", "GET")
	checkRefused(t, r, "HEAD", "/hello", 405, "", "GET")
	checkRefused(t, r, "GET", "/postRequest", 405, "MethodNotAllowed", "POST")
	checkRefused(t, r, "GET", "/nope", 404, "NotFound", "")
	checkRefused(t, r, "GET", "/post", 404, "NotFound", "") // a lambda with routes has no /NAME
	checkRefused(t, r, "GET", "/users/1/2", 404, "NotFound", "")

	// A daemon on / takes what no function route matches, never a 405.
	routeDaemon(t, r, "web", "/")
	testutil.WaitFor(t, 10*time.Second, "the daemon on / to answer /nope", func() bool {
		resp, b := r.do("GET", "/nope", nil, nil)
		return resp.StatusCode == 200 && string(b) == "web GET /nope"
	})
	checkRefused(t, r, "POST", "/hello", 405, "MethodNotAllowed", "GET")
	if resp, e := call("GET", "/hello", ""); resp.StatusCode != 201 || e.Handler != "main.hello" {
		t.Errorf("GET /hello beside a daemon on /: %d %+v", resp.StatusCode, e)
	}

	c, err := clientsdk.Connect(context.Background(), clientsdk.WithConn(r.nc))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	taken := clientsdk.AppSpec{Name: "other", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/true"},
		Lambda: &clientsdk.LambdaSpec{Routes: []clientsdk.FunctionRoute{{Method: "ANY", Path: "/users/{name}"}}}}
	_, err = c.Push(ctx, taken, "", nil)
	if e, ok := clientsdk.AsError(err); !ok || e.Code != 409 || e.Type != "RouteTaken" || !strings.Contains(e.Message, "lambda users") {
		t.Errorf("push of a route users holds: %v", err)
	}
	checkRoutes(ctx, t, c, "GET /users/{id} lambda users false -|GET /hello lambda hello false -|POST /postRequest lambda post false -|"+
		"* /legacy lambda legacy true -|* / daemon web true 1")
}

// checkRoutes checks what the routes verb lists, one "METHOD PATH KIND APP
// PREFIX READY" per route, joined with "|".
func checkRoutes(ctx context.Context, t *testing.T, c *clientsdk.Client, want string) {
	t.Helper()
	got, err := c.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, ri := range got {
		ready := "-"
		if ri.Ready != nil {
			ready = fmt.Sprint(*ri.Ready)
		}
		lines = append(lines, fmt.Sprintf("%s %s %s %s %v %s", ri.Method, ri.Path, ri.Kind, ri.App, ri.Prefix, ready))
	}
	if strings.Join(lines, "|") != want {
		t.Errorf("routes:\n got %s\nwant %s", strings.Join(lines, "|"), want)
	}
}

// checkRefused checks an error answer of the gateway: its status, its
// errorType ("" for a HEAD, which has no body) and its Allow header.
func checkRefused(t *testing.T, r *lambdaRig, method, path string, code int, typ, allow string) {
	t.Helper()
	resp, b := r.do(method, path, nil, nil)
	var e clientsdk.Error
	_ = json.Unmarshal(b, &e)
	if resp.StatusCode != code || e.Type != typ || resp.Header.Get("Allow") != allow {
		t.Errorf("%s %s: %d Allow %q %s, want %d Allow %q %s", method, path, resp.StatusCode, resp.Header.Get("Allow"), b, code, allow, typ)
	}
}

// routeDaemon stores daemon name with an --http route and one ready
// instance: a real HTTP server on loopback answering "NAME METHOD PATH".
func routeDaemon(t *testing.T, r *lambdaRig, name, prefix string) {
	t.Helper()
	routeDaemonTo(t, r, name, prefix, func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprintf(w, "%s %s %s", name, req.Method, req.URL.Path)
	})
}

// routeDaemonTo is routeDaemon whose instance answers with h.
func routeDaemonTo(t *testing.T, r *lambdaRig, name, prefix string, h http.HandlerFunc) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"},
		HTTP: []clientsdk.HTTPRoute{{Prefix: prefix}}}
	b, _ := json.Marshal(s.WithDefaults())
	ctx := context.Background()
	if _, err := r.apps.Put(ctx, name, b); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(r.nc)
	if err != nil {
		t.Fatal(err)
	}
	status, err := js.KeyValue(ctx, clientsdk.StatusBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(clientsdk.InstanceStatus{App: name, Instance: 0, State: clientsdk.StateRunning, Ready: true,
		Address: strings.TrimPrefix(srv.URL, "http://"), PID: 1})
	if _, err := status.Put(ctx, clientsdk.InstanceKey(name, 0), st); err != nil {
		t.Fatal(err)
	}
}
