package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

func TestTrackerBackoffGrowsAndCaps(t *testing.T) {
	tr := NewTracker(Policy{AutoRestart: true, MaxRestarts: 1000, MinUptime: time.Second, BaseDelay: 100 * time.Millisecond})
	want := []time.Duration{0, 100 * time.Millisecond, 150 * time.Millisecond, 225 * time.Millisecond, 337500 * time.Microsecond}
	for i, w := range want {
		d := tr.OnExit(1, "", 10*time.Millisecond)
		if !d.Restart || d.Delay != w || d.State != clientsdk.StateBackoff {
			t.Fatalf("restart %d: got %+v, want delay %s", i+1, d, w)
		}
	}
	var d Decision
	for range 50 {
		d = tr.OnExit(1, "", 10*time.Millisecond)
	}
	if d.Delay != MaxBackoff {
		t.Fatalf("delay after many crashes = %s, want the cap %s", d.Delay, MaxBackoff)
	}
}

func TestTrackerCrashLoopGivesUp(t *testing.T) {
	tr := NewTracker(Policy{AutoRestart: true, MaxRestarts: 3, MinUptime: time.Second, BaseDelay: time.Millisecond})
	for i := 1; i <= 3; i++ {
		if d := tr.OnExit(1, "", time.Millisecond); !d.Restart {
			t.Fatalf("restart %d refused: %+v", i, d)
		}
	}
	d := tr.OnExit(1, "", time.Millisecond)
	if d.Restart || d.State != clientsdk.StateErrored || !strings.Contains(d.Reason, "crash loop") {
		t.Fatalf("4th quick crash with max_restarts 3: got %+v, want errored", d)
	}
}

func TestTrackerStableRunsKeepRestarting(t *testing.T) {
	tr := NewTracker(Policy{AutoRestart: true, MaxRestarts: 2, MinUptime: 100 * time.Millisecond, BaseDelay: time.Millisecond})
	for i := range 20 {
		if d := tr.OnExit(0, "", 200*time.Millisecond); !d.Restart {
			t.Fatalf("exit %d after a stable run was not restarted: %+v", i, d)
		}
	}
}

func TestTrackerLongRunResetsBackoff(t *testing.T) {
	tr := NewTracker(Policy{AutoRestart: true, MaxRestarts: 100, MinUptime: time.Second, BaseDelay: 100 * time.Millisecond})
	for range 5 {
		tr.OnExit(1, "", time.Millisecond)
	}
	if d := tr.OnExit(1, "", BackoffResetAfter); d.Delay != 0 {
		t.Fatalf("first exit after a %s run waited %s, want an immediate restart", BackoffResetAfter, d.Delay)
	}
	if d := tr.OnExit(1, "", time.Millisecond); d.Delay != 100*time.Millisecond {
		t.Fatalf("second exit after reset waited %s, want the base delay", d.Delay)
	}
}

func TestTrackerNoRestartCases(t *testing.T) {
	cases := []struct {
		name   string
		p      Policy
		code   int
		signal string
		state  clientsdk.InstanceState
	}{
		{"stop exit code", Policy{AutoRestart: true, MaxRestarts: 5, StopExitCodes: []int{0, 3}}, 3, "", clientsdk.StateExited},
		{"auto restart off", Policy{AutoRestart: false, MaxRestarts: 5}, 1, "", clientsdk.StateExited},
		{"signal is not an exit code", Policy{AutoRestart: true, MaxRestarts: 5, StopExitCodes: []int{-1}}, -1, "SIGKILL", clientsdk.StateBackoff},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewTracker(c.p).OnExit(c.code, c.signal, time.Second)
			if d.State != c.state {
				t.Fatalf("got %+v, want state %s", d, c.state)
			}
		})
	}
}
