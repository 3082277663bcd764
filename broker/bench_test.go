package broker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
)

// BenchmarkServeColdStart measures what `dartup serve` spends between being
// started and being ready: broker.Start on a fresh, empty data dir (embedded
// NATS on a free loopback port, JetStream on the file store, every asset
// created, the control API and the HTTP gateway up). Shutdown is not timed.
// It reports the median and the 90th percentile; the aim is a median under
// 300 ms. Run it with:
//
//	go test -run '^$' -bench BenchmarkServeColdStart -benchtime 30x ./broker/
func BenchmarkServeColdStart(b *testing.B) {
	var times []time.Duration
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		t0 := time.Now()
		br, err := broker.Start(context.Background(), broker.Config{DataDir: dir, NATSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if !br.Ready() {
			b.Fatal("Start returned a broker that is not ready")
		}
		times = append(times, d)
		_ = br.Shutdown(context.Background())
		b.StartTimer()
	}
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(times[len(times)/2]), "ms-median")
	b.ReportMetric(ms(times[len(times)*9/10]), "ms-p90")
}
