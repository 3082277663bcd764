package main

import (
	"strings"
	"testing"
)

// TestPushRefusesOutOfRangeFlags: `dartup push` checks the server's bounds
// before it connects (the --server here answers nothing): out-of-range flags
// are a usage error, exit code 2, naming the flag, the value and the range.
func TestPushRefusesOutOfRangeFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		flags []string
		want  []string
	}{
		{[]string{"--port", "70000"}, []string{"--port", "70000", "65535"}},
		{[]string{"--port", "65000", "-j", "600"}, []string{"--port", "65000 with 600 instances", "65535"}},
		{[]string{"-j", "5000"}, []string{"--instances", "5000", "1 to 1024"}},
		{[]string{"--kill-timeout", "1000000h"}, []string{"--kill-timeout", "1000000h0m0s", "0s to 10m0s"}},
		{[]string{"--kill-timeout", "-1s"}, []string{"--kill-timeout", "-1s"}},
		{[]string{"--min-uptime", "2h"}, []string{"--min-uptime", "2h0m0s"}},
		{[]string{"--restart-delay", "11m"}, []string{"--restart-delay", "11m0s"}},
		{[]string{"--max-restarts", "-1"}, []string{"--max-restarts", "-1", "0 to 10000"}},
		{[]string{"--stop-exit-code", "256"}, []string{"--stop-exit-code", "256", "0 to 255"}},
		{[]string{"--arg", strings.Repeat("a", 40<<10)}, []string{"--arg", "40960 bytes", "at most 32768"}},
		{[]string{"--env", "BIG=" + strings.Repeat("a", 40<<10)}, []string{"--env", "BIG", "at most 32768"}},
		{[]string{"--constraint", "zone=" + strings.Repeat("z", 200)}, []string{"--constraint", "at most 128"}},
		{[]string{"--lambda", "--timeout", "2562047h"}, []string{"--timeout", "2562047h0m0s", "1ms to 15m0s"}},
		{[]string{"--lambda", "--timeout", "-5s"}, []string{"--timeout", "-5s"}},
		{[]string{"--lambda", "--keep-warm", "48h"}, []string{"--keep-warm", "48h0m0s", "0s to 24h0m0s"}},
		{[]string{"--lambda", "--memory", "-1"}, []string{"--memory", "-1", "1 to 10240"}},
		{[]string{"--lambda", "--queue", "9223372036854775807"}, []string{"--queue", "9223372036854775807", "0 to 100000"}},
		{[]string{"--lambda", "--max-workers", "100000"}, []string{"--max-workers", "100000", "1 to 1024"}},
		{[]string{"--lambda", "--handler", strings.Repeat("h", 300)}, []string{"--handler", "at most 256"}},
		{[]string{"--lambda", "--protocol", "grpc"}, []string{"--protocol", "grpc"}},
		{[]string{"--lambda", "--retries", "101"}, []string{"--retries", "101", "0 to 100"}},
		{[]string{"--lambda", "--retries", "-1"}, []string{"--retries", "-1"}},
		{[]string{"--lambda", "--retry-backoff", "1s,soon"}, []string{"--retry-backoff", "1s,soon"}},
		{[]string{"--lambda", "--retry-backoff", "1s,13h"}, []string{"--retry-backoff", "13h0m0s", "0s to 12h0m0s"}},
		{[]string{"--lambda", "--max-event-age", "200h"}, []string{"--max-event-age", "200h0m0s", "1s to 168h0m0s"}},
		{[]string{"--lambda", "--on-success", "dartup.api.push"}, []string{"--on-success", "dartup.api.push", "outside dartup.*"}},
		{[]string{"--lambda", "--on-failure", "$JS.API.STREAM.DELETE.X"}, []string{"--on-failure", "outside $JS"}},
		{[]string{"--lambda", "--on-failure", "a.>"}, []string{"--on-failure", "without spaces or wildcards"}},
		{[]string{"--retries", "3"}, []string{"--retries", "--lambda"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.flags, " ")[:min(40, len(strings.Join(c.flags, " ")))], func(t *testing.T) {
			args := append([]string{"push", "--server", "nats://127.0.0.1:1", "--name", "bad"}, c.flags...)
			args = append(args, "--", "/bin/true")
			r := runCLI(t, "", nil, args...)
			if r.code != 2 {
				t.Fatalf("dartup push %s: exit %d, want 2 (usage)\n%s", strings.Join(c.flags, " "), r.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not name %q", r.stderr, w)
				}
			}
		})
	}
}
