package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
)

// BenchmarkServeProcessColdStart measures `dartup serve` as a user sees it:
// from fork/exec of the binary to its ready file DATA/serve.json (polled
// every 0.5 ms), on a fresh data dir. It reports the median and the 90th
// percentile, for a server with its runner (the default) and without
// (--no-runner). Run it with:
//
//	go test -run '^$' -bench BenchmarkServeProcessColdStart -benchtime 20x ./cmd/dartup/
func BenchmarkServeProcessColdStart(b *testing.B) {
	bin := testutil.Dartup(b)
	b.Run("with-runner", func(b *testing.B) { benchServeProcess(b, bin) })
	b.Run("no-runner", func(b *testing.B) { benchServeProcess(b, bin, "--no-runner") })
}

func benchServeProcess(b *testing.B, bin string, extra ...string) {
	var times []time.Duration
	for b.Loop() {
		b.StopTimer()
		dir := testutil.TempDir(b)
		ready := filepath.Join(dir, ReadyFileName)
		cmd := exec.Command(bin, append([]string{"serve", "--data", dir, "--nats-addr", "127.0.0.1:0", "-p", "0"}, extra...)...)
		b.StartTimer()
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			if raw, err := os.ReadFile(ready); err == nil {
				var rf readyFile
				if json.Unmarshal(raw, &rf) == nil && rf.PID == cmd.Process.Pid {
					break
				}
			}
			if time.Since(t0) > 30*time.Second {
				_ = cmd.Process.Kill()
				b.Fatal("dartup serve was not ready within 30 s")
			}
			time.Sleep(500 * time.Microsecond)
		}
		d := time.Since(t0)
		b.StopTimer()
		times = append(times, d)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		b.StartTimer()
	}
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(times[len(times)/2]), "ms-median")
	b.ReportMetric(ms(times[len(times)*9/10]), "ms-p90")
}
