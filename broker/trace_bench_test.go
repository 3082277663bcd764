package broker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkGatewayWarmInvoke measures a warm invocation of the hello
// lambda through the HTTP gateway (HTTP → gateway → lambda.NAME → Manager
// → Runtime API → aws-lambda-go worker → back), with the process's
// allocations per request: without a caller's traceparent (the gateway
// starts a trace), with one, and with spans exported to a loopback OTLP
// collector. It reports p50 and p99 in µs and the CPU time this process
// spent per request (the worker's excepted). Run it with:
//
//	go test -run '^$' -bench BenchmarkGatewayWarmInvoke -benchtime 3000x ./broker/
func BenchmarkGatewayWarmInvoke(b *testing.B) {
	b.Run("no-traceparent", func(b *testing.B) { benchGatewayInvoke(b, "", false) })
	b.Run("traceparent", func(b *testing.B) { benchGatewayInvoke(b, callerTP, false) })
	b.Run("otlp", func(b *testing.B) { benchGatewayInvoke(b, callerTP, true) })
}

func benchGatewayInvoke(b *testing.B, traceparent string, otlp bool) {
	var cfgMod []func(*broker.Config)
	lopts := []lambdas.Option{lambdas.WithNodeID("n1")}
	if otlp {
		tp, _ := testutil.OTLPProvider(b)
		cfgMod = append(cfgMod, func(c *broker.Config) { c.TracerProvider = tp })
		lopts = append(lopts, lambdas.WithTracerProvider(tp))
	}
	br := testutil.StartBroker(b, cfgMod...)
	m, err := lambdas.New(testutil.Connect(b, br.NATSURL()), lopts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close(context.Background()) })
	js, _ := jetstream.New(testutil.Connect(b, br.NATSURL()))
	apps, err := js.KeyValue(context.Background(), clientsdk.AppsBucket)
	if err != nil {
		b.Fatal(err)
	}
	s := clientsdk.AppSpec{Name: "hello", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"},
		Lambda: &clientsdk.LambdaSpec{MaxWorkers: 1}}
	s = s.WithDefaults()
	raw, _ := json.Marshal(s)
	if s.Revision, err = apps.Put(context.Background(), "hello", raw); err != nil {
		b.Fatal(err)
	}
	if err := m.Deploy(s, lambdas.Command{Path: testutil.BuildGo(b, helloPkg)}); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func() {
		req, _ := http.NewRequest("GET", br.HTTPURL()+"/hello", nil)
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("GET /hello: %d", resp.StatusCode)
		}
	}
	for range 200 { // warm the worker, the connections and the route
		get()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		get()
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(len(lat)), "cpu-µs/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// cpuTime is the CPU time (user and system) this process has used: the
// gateway's, the lambda host's and the client's, not the worker's. It
// varies less than latency on a busy machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
