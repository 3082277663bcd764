package broker

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dartup/dartup/clientsdk"
)

func TestUIHostAllowed(t *testing.T) {
	for _, tc := range []struct {
		host   string
		authed bool
		want   bool
	}{
		{"127.0.0.1:2374", false, true},
		{"127.8.9.10:2374", false, true},
		{"localhost:2374", false, true},
		{"LocalHost", false, true},
		{"[::1]:2374", false, true},
		{"[::ffff:127.0.0.1]:80", false, true},
		{"evil.example:2374", false, false}, // DNS rebinding
		{"localhost.evil.example", false, false},
		{"10.0.0.5:2374", false, false},
		{"", false, false},
		{"evil.example:2374", true, true}, // a logged-in user: any name
	} {
		if got := uiHostAllowed(tc.host, tc.authed); got != tc.want {
			t.Errorf("uiHostAllowed(%q, %v) = %v, want %v", tc.host, tc.authed, got, tc.want)
		}
	}
}

func TestLineBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var b lineBudget
	taken := func(n int, at time.Time) int {
		ok := 0
		for range n {
			if b.take(at, 10, 5) {
				ok++
			}
		}
		return ok
	}
	for _, step := range []struct {
		at        time.Duration
		ask, want int
	}{
		{0, 8, 5},                        // the burst
		{50 * time.Millisecond, 3, 0},    // half a token
		{100 * time.Millisecond, 3, 1},   // one token in 100 ms at 10/s
		{10 * time.Second, 20, 5},        // refilled to the burst, not beyond
		{9 * time.Second, 3, 0},          // a clock going back gives nothing
		{10500 * time.Millisecond, 9, 5}, // half a second later: 5
	} {
		if got := taken(step.ask, t0.Add(step.at)); got != step.want {
			t.Errorf("at +%s, %d lines asked: %d went, want %d", step.at, step.ask, got, step.want)
		}
	}
}

func TestClipText(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456789…[3 bytes cut]"},
		{"aé" + strings.Repeat("x", 10), 2, "a…[12 bytes cut]"}, // é is 2 bytes: not split
	} {
		got := clipText(tc.in, tc.limit)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("clipText(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

func TestUIView(t *testing.T) {
	now := time.Unix(2000, 0)
	long := strings.Repeat("e", 5000)
	apps := []clientsdk.AppSummary{
		{Name: "web", Kind: clientsdk.KindDaemon, State: clientsdk.AppAlive, Desired: 2, Running: 1, Instances: []clientsdk.InstanceStatus{
			{App: "web", Instance: 0, Node: "n1", State: clientsdk.StateRunning, PID: 42, Restarts: 2, CPUPercent: 12.5, MemoryBytes: 1 << 20},
			{App: "web", Instance: 1, Node: "n1", State: clientsdk.StateBackoff, LastError: long},
		}},
		{Name: "fn", Kind: clientsdk.KindLambda, State: clientsdk.AppAlive, Instances: []clientsdk.InstanceStatus{
			{App: "fn", Node: "n1", WarmWorkers: 2, Lambda: &clientsdk.LambdaStats{Invocations: 30, Errors: 1, ColdStarts: 2, P50: clientsdk.Duration(2 * time.Millisecond), P99: clientsdk.Duration(9 * time.Millisecond)}},
			{App: "fn", Node: "n2", WarmWorkers: 1, Lambda: &clientsdk.LambdaStats{Invocations: 10, P50: clientsdk.Duration(6 * time.Millisecond), P99: clientsdk.Duration(20 * time.Millisecond)}},
		}},
	}
	nodes := []clientsdk.Node{{ID: "n1", Alive: true, HeartbeatAge: clientsdk.Duration(1500 * time.Millisecond), Labels: map[string]string{"zone": "b", "disk": "ssd"}, Draining: true}}
	v := uiView("srv", apps, nodes, now)
	if len(v.Apps) != 2 || len(v.Instances) != 2 || v.Instances[0].PID != 42 || v.Instances[0].CPU != 12.5 {
		t.Fatalf("apps %+v instances %+v: want both apps and web's two instances (the lambda's node entries are not instances)", v.Apps, v.Instances)
	}
	if e := v.Instances[1].LastError; len(e) > uiMaxText+32 || !strings.HasSuffix(e, "bytes cut]") {
		t.Errorf("a 5000-byte error is sent as %d bytes: %q…", len(e), e[:40])
	}
	if len(v.Lambdas) != 1 {
		t.Fatalf("lambdas %+v", v.Lambdas)
	}
	l := v.Lambdas[0]
	// p50 weighted by invocations: (2*30 + 6*10) / 40 = 3 ms; p99 the largest.
	if l.Invocations != 40 || l.Errors != 1 || l.ColdStarts != 2 || l.P50MS != 3 || l.P99MS != 20 || l.Warm != 3 || l.Nodes != 2 {
		t.Errorf("lambda fn: %+v", l)
	}
	n := v.Nodes[0]
	if n.HeartbeatMS != 1500 || n.Labels != "disk=ssd, zone=b" || !n.Draining {
		t.Errorf("node: %+v", n)
	}

	var many []clientsdk.InstanceStatus
	for i := range uiMaxInstanceRows + 7 {
		many = append(many, clientsdk.InstanceStatus{App: "big", Instance: i})
	}
	v = uiView("srv", []clientsdk.AppSummary{{Name: "big", Kind: clientsdk.KindDaemon, Instances: many}}, nil, now)
	if len(v.Instances) != uiMaxInstanceRows || v.MoreInstances != 7 {
		t.Errorf("%d instances sent, %d more said; want %d and 7", len(v.Instances), v.MoreInstances, uiMaxInstanceRows)
	}
}

func TestSSEFrameCannotBreakOut(t *testing.T) {
	f := string(sseFrame("line", uiLine{Line: "a\n\ndata: forged\r\nevent: x\u2028<script>"}))
	if strings.Count(f, "\n") != 3 || strings.Contains(f, "\r") || strings.Contains(f, "<script>") || !strings.HasSuffix(f, "\n\n") {
		t.Errorf("frame %q: a line's breaks or markup came through raw", f)
	}
}
