package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkMetricsScrape measures GET /metrics (with gzip, as Prometheus
// asks) on a broker whose buckets hold 300 daemon instances (3 apps of 100)
// and 50 lambdas with stats on one node, as runners would write them. The
// aim is under 50 ms (go run ./bench -only metrics measures it with real
// workers); cpu-ms/op is the process's CPU time per scrape, client
// included. Run it with:
//
//	go test -run '^$' -bench BenchmarkMetricsScrape -benchtime 200x ./broker/
func BenchmarkMetricsScrape(b *testing.B) {
	br := testutil.StartBroker(b)
	nc := testutil.Connect(b, br.NATSURL())
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	apps, _ := js.KeyValue(ctx, clientsdk.AppsBucket)
	status, _ := js.KeyValue(ctx, clientsdk.StatusBucket)
	put := func(kv jetstream.KeyValue, key string, v any) {
		data, _ := json.Marshal(v)
		if _, err := kv.Put(ctx, key, data); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now().UTC()
	for a := range 3 {
		name := fmt.Sprintf("idle%d", a)
		put(apps, name, clientsdk.AppSpec{Name: name, Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: []string{"sleep"}, Instances: 100}.WithDefaults())
		for i := range 100 {
			code := 1
			put(status, clientsdk.InstanceKey(name, i), clientsdk.InstanceStatus{App: name, Instance: i, Node: "n1", State: clientsdk.StateRunning, Ready: true,
				PID: 1000 + i, StartedAt: now, Restarts: 2, LastExitCode: &code, Exits: map[string]uint64{"1": 2}, CPUSeconds: 1.5, MemoryBytes: 1 << 20, UpdatedAt: now})
		}
	}
	buckets := make([]uint64, len(clientsdk.LambdaDurationBounds))
	for i := range buckets {
		buckets[i] = uint64(10 * i)
	}
	for l := range 50 {
		name := fmt.Sprintf("fn%02d", l)
		put(apps, name, clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"}}.WithDefaults())
		put(status, clientsdk.LambdaStatusKey(name, "n1"), clientsdk.InstanceStatus{App: name, Instance: -1, Node: "n1", State: clientsdk.StateRunning, WarmWorkers: 1,
			Lambda: &clientsdk.LambdaStats{Invocations: 200, Errors: 3, DurationBuckets: buckets, DurationSum: 12}, UpdatedAt: now})
	}
	client := &http.Client{Transport: &http.Transport{}}
	get := func() int {
		resp, err := client.Get(br.HTTPURL() + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return int(n)
	}
	testutil.WaitFor(b, 10*time.Second, "the 350 entries in the cache", func() bool { return get() > 200_000 })
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	c0 := cpu()
	for b.Loop() {
		get()
	}
	// CPU is steadier than wall time on a shared machine; it counts the
	// client's part (reading the gzip answer) too.
	b.ReportMetric(float64(cpu()-c0)/float64(b.N)/1e6, "cpu-ms/op")
}
