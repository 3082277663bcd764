package broker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
)

// metricsRig is a broker with a lambda host that reports to the status
// bucket, as a runner's does.
func metricsRig(t *testing.T, opts ...func(*broker.Config)) *lambdaRig {
	t.Helper()
	b := testutil.StartBroker(t, opts...)
	nc := testutil.Connect(t, b.NATSURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	apps, err := js.KeyValue(ctx, clientsdk.AppsBucket)
	if err != nil {
		t.Fatal(err)
	}
	status, err := js.KeyValue(ctx, clientsdk.StatusBucket)
	if err != nil {
		t.Fatal(err)
	}
	m, err := lambdas.New(testutil.Connect(t, b.NATSURL()), lambdas.WithNodeID("n1"), lambdas.WithStatusBucket(status),
		lambdas.WithStopGrace(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return &lambdaRig{t: t, b: b, m: m, apps: apps, nc: nc}
}

// After 10 invocations through the gateway, the lambda's invocations
// counter and its duration histogram say 10 (the status entry is written
// within a second), and so does the gateway's request counter of its
// route. A function route is labelled with its declared pattern, and a
// request for a random path creates no label holding that path.
func TestMetricsCountInvocationsAndRequests(t *testing.T) {
	r := metricsRig(t)
	r.host("hello", helloPkg, nil)
	r.host("users", apigwPkg, func(l *clientsdk.LambdaSpec) {
		l.Routes = []clientsdk.FunctionRoute{{Method: "GET", Path: "/users/{id}"}}
	})
	for i := 0; i < 10; i++ {
		if resp, body := r.do("GET", "/hello", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET /hello: %d %s", resp.StatusCode, body)
		}
	}
	if resp, body := r.do("GET", "/users/4217", nil, nil); resp.StatusCode != 201 { // its echo answers 201
		t.Fatalf("GET /users/4217: %d %s", resp.StatusCode, body)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	random := "zz" + hex.EncodeToString(rnd[:])
	if resp, _ := r.do("POST", "/"+random+"/x?"+random+"=1", nil, nil); resp.StatusCode != 404 {
		t.Fatalf("POST /%s: %d, want 404", random, resp.StatusCode)
	}
	url := r.b.HTTPURL() + "/metrics"
	var fams map[string]*dto.MetricFamily
	var inv, hist, req float64
	defer func() {
		if t.Failed() {
			t.Logf("last scrape: invocations %v, histogram count %v, gateway requests %v", inv, hist, req)
			if f := fams["dartup_http_requests_total"]; f != nil {
				for _, m := range f.GetMetric() {
					t.Logf("  %v = %v", m.GetLabel(), m.GetCounter().GetValue())
				}
			}
		}
	}()
	testutil.WaitFor(t, 10*time.Second, "10 invocations of hello in /metrics", func() bool {
		var code int
		code, fams = testutil.Scrape(t, url, "", "")
		if code != 200 {
			t.Fatalf("GET /metrics from loopback without a password: %d", code)
		}
		hello := map[string]string{"app": "hello", "node": "n1"}
		inv, _ = testutil.Sample(fams, "dartup_lambda_invocations_total", map[string]string{"app": "hello", "node": "n1", "result": "ok"})
		hist, _ = testutil.Sample(fams, "dartup_lambda_duration_seconds", hello)
		req, _ = testutil.Sample(fams, "dartup_http_requests_total", map[string]string{"app": "hello", "route": "/hello", "method": "GET", "code": "200"})
		return inv == 10 && hist == 10 && req == 10
	})
	want := []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"dartup_lambda_invocations_total", map[string]string{"app": "hello", "result": "error"}, 0},
		{"dartup_lambda_cold_starts_total", map[string]string{"app": "hello", "node": "n1"}, 1},
		{"dartup_http_requests_total", map[string]string{"app": "users", "route": "/users/{id}", "method": "GET", "code": "201"}, 1},
		{"dartup_http_requests_total", map[string]string{"app": "", "route": "unmatched", "method": "POST", "code": "404"}, 1},
		{"dartup_app_info", map[string]string{"app": "users", "kind": "lambda"}, 1},
		{"dartup_lambda_async_backlog", map[string]string{"app": "hello"}, 0},
		{"dartup_lambda_dead_letters", map[string]string{"app": "hello"}, 0},
	}
	for _, w := range want {
		if v, ok := testutil.Sample(fams, w.name, w.labels); !ok || v != w.value {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, v, ok, w.value)
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), random) || strings.Contains(l.GetValue(), "4217") {
					t.Errorf("%s has a label made from a request path: %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// /metrics is behind the gateway's authentication, on the gateway and on
// --metrics-addr alike: 401 without credentials (or with wrong ones) under
// --require-password, 200 with Basic auth; from loopback without
// --require-password, no credentials are needed.
func TestMetricsAuthentication(t *testing.T) {
	b := testutil.StartBroker(t, func(c *broker.Config) {
		c.RequirePassword = true
		c.MetricsAddr = "127.0.0.1:0"
	})
	addUser(t, b, "alice", alicePW)
	if b.MetricsURL() == "" {
		t.Fatal("no metrics listener")
	}
	for _, url := range []string{b.HTTPURL() + "/metrics", b.MetricsURL()} {
		if code, _ := testutil.Scrape(t, url, "", ""); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d, want 401", url, code)
		}
		if code, _ := testutil.Scrape(t, url, "alice", wrongPW); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong password: %d, want 401", url, code)
		}
		code, fams := testutil.Scrape(t, url, "alice", alicePW)
		if code != 200 {
			t.Fatalf("%s with Basic auth: %d, want 200", url, code)
		}
		if v, ok := testutil.Sample(fams, "dartup_nats_connections", nil); !ok || v < 1 {
			t.Errorf("%s: dartup_nats_connections = %v (found %v)", url, v, ok)
		}
		if _, ok := fams["go_goroutines"]; !ok {
			t.Errorf("%s: no Go collector metrics", url)
		}
	}
	if code, _, _ := httpGet(t, strings.TrimSuffix(b.MetricsURL(), "/metrics")+"/hello", "alice", alicePW); code != http.StatusNotFound {
		t.Errorf("the metrics listener serves /hello: %d, want 404", code)
	}
	open := testutil.StartBroker(t, func(c *broker.Config) { c.MetricsAddr = "127.0.0.1:0" })
	for _, url := range []string{open.HTTPURL() + "/metrics", open.MetricsURL()} {
		if code, _ := testutil.Scrape(t, url, "", ""); code != 200 {
			t.Errorf("%s from loopback without --require-password: %d, want 200", url, code)
		}
	}
}

// --metrics-addr is checked like the other listeners: host:port, and the
// binding rule outside loopback.
func TestMetricsAddrChecked(t *testing.T) {
	for _, c := range []struct {
		cfg  broker.Config
		want string // "" for no error, "insecure" for ErrInsecureBind
	}{
		{broker.Config{MetricsAddr: "127.0.0.1:9100"}, ""},
		{broker.Config{MetricsAddr: "nope"}, "--metrics-addr"},
		{broker.Config{MetricsAddr: "127.0.0.1:99999"}, "--metrics-addr"},
		{broker.Config{MetricsAddr: "0.0.0.0:9100"}, "insecure"},
		{broker.Config{MetricsAddr: "0.0.0.0:9100", RequirePassword: true}, "insecure"},
		{broker.Config{MetricsAddr: "0.0.0.0:9100", Insecure: true}, ""},
	} {
		c.cfg.Defaults()
		err := c.cfg.Check()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.cfg.MetricsAddr, err)
		case c.want == "insecure":
			var ib *broker.InsecureBindError
			if !errors.As(err, &ib) || ib.Listener != "metrics" {
				t.Errorf("%q (password %v): %v, want an insecure bind error for metrics", c.cfg.MetricsAddr, c.cfg.RequirePassword, err)
			}
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want an error naming %s", c.cfg.MetricsAddr, err, c.want)
		}
	}
}

// A host an app routes is the app's, its /metrics included; other hosts
// get the gateway's.
func TestMetricsYieldToHostRoutes(t *testing.T) {
	r := metricsRig(t)
	rt, err := clientsdk.ParseRoute("metrics.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	spec := clientsdk.AppSpec{Name: "site", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"}, HTTP: []clientsdk.HTTPRoute{rt}}.WithDefaults()
	data, _ := json.Marshal(spec)
	if _, err := r.apps.Put(context.Background(), "site", data); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the site's host to take /metrics", func() bool {
		req, _ := http.NewRequest("GET", r.b.HTTPURL()+"/metrics", nil)
		req.Host = "metrics.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable && !strings.Contains(string(body), "dartup_nats_connections")
	})
	if resp, body := r.do("GET", "/metrics", nil, nil); resp.StatusCode != 200 || !strings.Contains(string(body), "dartup_nats_connections") {
		t.Fatalf("GET /metrics on the gateway's address: %d", resp.StatusCode)
	}
}
