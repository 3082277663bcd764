package broker_test

import (
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func app(n int, mod ...func(*clientsdk.AppSpec)) clientsdk.AppSpec {
	s := clientsdk.AppSpec{Name: "web", Kind: clientsdk.KindDaemon, Instances: n, Revision: 5}
	for _, m := range mod {
		m(&s)
	}
	return s.WithDefaults()
}

func running(i int, node string, since time.Duration) clientsdk.InstanceStatus {
	return clientsdk.InstanceStatus{App: "web", Instance: i, Node: node, State: clientsdk.StateRunning, PID: 100 + i,
		StartedAt: now.Add(-since), SpecRevision: 5, CPUPercent: 3, MemoryBytes: 1 << 20}
}

func liveNodes(nodes ...clientsdk.Node) map[string]clientsdk.Node {
	m := map[string]clientsdk.Node{}
	for _, n := range nodes {
		m[n.ID] = n
	}
	return m
}

func TestSummarizeTellsTheTruth(t *testing.T) {
	a := clientsdk.Node{ID: "a"}
	b := clientsdk.Node{ID: "b", Labels: map[string]string{"zone": "b"}}
	code7 := 7
	for _, c := range []struct {
		name   string
		spec   clientsdk.AppSpec
		st     []clientsdk.InstanceStatus
		live   map[string]clientsdk.Node
		state  clientsdk.AppState
		msg    string
		states []clientsdk.InstanceState
	}{
		{"all running", app(2), []clientsdk.InstanceStatus{running(0, "a", time.Minute), running(1, "a", time.Minute)}, liveNodes(a),
			clientsdk.AppAlive, "2/2 running", []clientsdk.InstanceState{"running", "running"}},
		{"a dead node's instances are lost, not running", app(2), []clientsdk.InstanceStatus{running(0, "a", time.Minute), running(1, "b", time.Minute)}, liveNodes(a),
			clientsdk.AppAlive, "1/2 running; 1 lost (node b stopped sending heartbeats)", []clientsdk.InstanceState{"running", "lost"}},
		{"lost with nowhere to go says why", app(1, func(s *clientsdk.AppSpec) { s.Constraints = map[string]string{"zone": "b"} }),
			[]clientsdk.InstanceStatus{running(0, "b", time.Minute)}, liveNodes(a),
			clientsdk.AppDead, "lost (node b stopped sending heartbeats)", []clientsdk.InstanceState{"lost"}},
		{"unsatisfiable constraint: pending with the reason", app(1, func(s *clientsdk.AppSpec) { s.Constraints = map[string]string{"zone": "nowhere"} }),
			nil, liveNodes(a, b), clientsdk.AppDead, "pending: no live node matches zone=nowhere", []clientsdk.InstanceState{"pending"}},
		{"no node at all", app(1), nil, liveNodes(),
			clientsdk.AppDead, "pending: no live runner node (start `dartup serve` or `dartup runner`)", []clientsdk.InstanceState{"pending"}},
		{"every eligible node draining", app(1), nil, liveNodes(clientsdk.Node{ID: "a", Draining: true}),
			clientsdk.AppDead, "pending: every eligible node is draining (`dartup nodes undrain NODE`)", []clientsdk.InstanceState{"pending"}},
		{"every eligible node full", app(2), []clientsdk.InstanceStatus{running(0, "a", time.Minute)}, liveNodes(clientsdk.Node{ID: "a", MaxInstances: 1, Instances: 1}),
			clientsdk.AppAlive, "1/2 running; 1 pending: every eligible node is at its --max-instances", []clientsdk.InstanceState{"running", "pending"}},
		{"not placed yet: starting", app(1), nil, liveNodes(a), clientsdk.AppDead, "starting", []clientsdk.InstanceState{"starting"}},
		{"crash loop from the first quick exit", app(1), []clientsdk.InstanceStatus{{App: "web", Instance: 0, Node: "a", State: clientsdk.StateBackoff,
			Restarts: 12, QuickExits: 2, LastExitCode: &code7, NextRestartAt: now.Add(3400 * time.Millisecond), SpecRevision: 5}}, liveNodes(a),
			clientsdk.AppError, "crash loop: exit code 7, 12 restarts, next try in 3.4s", []clientsdk.InstanceState{"backoff"}},
		{"crash-looping instance briefly up is still a loop", app(1), []clientsdk.InstanceStatus{func() clientsdk.InstanceStatus {
			s := running(0, "a", 200*time.Millisecond)
			s.QuickExits, s.Restarts, s.LastExitCode = 1, 1, &code7
			return s
		}()}, liveNodes(a), clientsdk.AppError, "crash loop: exit code 7, 1 restarts, running again", []clientsdk.InstanceState{"running"}},
		{"up past min_uptime: no longer a loop", app(1), []clientsdk.InstanceStatus{func() clientsdk.InstanceStatus {
			s := running(0, "a", 2*time.Second)
			s.QuickExits, s.Restarts = 1, 1
			return s
		}()}, liveNodes(a), clientsdk.AppAlive, "", []clientsdk.InstanceState{"running"}},
		{"errored", app(1), []clientsdk.InstanceStatus{{App: "web", Instance: 0, Node: "a", State: clientsdk.StateErrored, LastError: "/x/dart does not exist on node a", SpecRevision: 5}},
			liveNodes(a), clientsdk.AppError, "#0: /x/dart does not exist on node a", []clientsdk.InstanceState{"errored"}},
		{"killed", app(1, func(s *clientsdk.AppSpec) { s.Stopped = true }), []clientsdk.InstanceStatus{{App: "web", Instance: 0, Node: "b", State: clientsdk.StateStopped, SpecRevision: 5}},
			liveNodes(a), clientsdk.AppDead, "stopped", []clientsdk.InstanceState{"stopped"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sum := broker.Summarize(c.spec, c.st, c.live, now)
			if sum.State != c.state || sum.Message != c.msg {
				t.Fatalf("summary %s - %q, want %s - %q", sum.State, sum.Message, c.state, c.msg)
			}
			var states []clientsdk.InstanceState
			for _, in := range sum.Instances {
				states = append(states, in.State)
				if in.State == clientsdk.StateLost && (in.PID != 0 || !in.StartedAt.IsZero() || in.CPUPercent != 0 || in.MemoryBytes != 0) {
					t.Fatalf("a lost instance shows a process: %+v", in)
				}
			}
			if len(states) != len(c.states) {
				t.Fatalf("instances %v, want %v", states, c.states)
			}
			for i := range states {
				if states[i] != c.states[i] {
					t.Fatalf("instances %v, want %v", states, c.states)
				}
			}
		})
	}
}

func TestSummarizeLambdas(t *testing.T) {
	fn := clientsdk.AppSpec{Name: "f", Kind: clientsdk.KindLambda, Revision: 3}.WithDefaults()
	entry := func(node string, state clientsdk.InstanceState, warm int, msg string) clientsdk.InstanceStatus {
		return clientsdk.InstanceStatus{App: "f", Instance: -1, Node: node, State: state, WarmWorkers: warm, LastError: msg, SpecRevision: 3}
	}
	a, b := clientsdk.Node{ID: "a"}, clientsdk.Node{ID: "b"}
	for _, c := range []struct {
		name  string
		st    []clientsdk.InstanceStatus
		live  map[string]clientsdk.Node
		state clientsdk.AppState
		msg   string
		warm  int
	}{
		{"warm workers on live nodes count", []clientsdk.InstanceStatus{entry("a", "", 2, ""), entry("b", "", 1, "")}, liveNodes(a, b), clientsdk.AppAlive, "3 warm", 3},
		{"workers on a dead node do not", []clientsdk.InstanceStatus{entry("a", "", 2, ""), entry("b", "", 1, "")}, liveNodes(a), clientsdk.AppAlive, "2 warm", 2},
		{"cannot start anywhere: the cause", []clientsdk.InstanceStatus{entry("a", clientsdk.StateErrored, 0, "/x/dart does not exist on node a")}, liveNodes(a),
			clientsdk.AppError, "cannot start: a: /x/dart does not exist on node a", 0},
		{"fails on one node, hosted on another: not an error", []clientsdk.InstanceStatus{entry("a", clientsdk.StateErrored, 0, "boom"), entry("b", "", 0, "")}, liveNodes(a, b),
			clientsdk.AppDead, "", 0},
		{"no node: pending", nil, liveNodes(), clientsdk.AppDead, "pending: no live runner node (start `dartup serve` or `dartup runner`)", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			sum := broker.Summarize(fn, c.st, c.live, now)
			if sum.State != c.state || sum.Message != c.msg || sum.WarmWorkers != c.warm {
				t.Fatalf("summary %s - %q (%d warm), want %s - %q (%d warm)", sum.State, sum.Message, sum.WarmWorkers, c.state, c.msg, c.warm)
			}
		})
	}
}

// A rollout in progress, a stopped one, instances not ready yet and
// instances restarting after a long run are all said.
func TestSummarizeRollouts(t *testing.T) {
	a := clientsdk.Node{ID: "a"}
	web := func(s *clientsdk.AppSpec) { s.HTTP = []clientsdk.HTTPRoute{{Prefix: "/"}}; s.Ready = "" }
	ready := func(st clientsdk.InstanceStatus, rev uint64) clientsdk.InstanceStatus {
		st.Ready, st.SpecRevision = true, rev
		return st
	}
	code3 := 3
	failed := ready(running(1, "a", time.Minute), 4)
	failed.FailedRevision, failed.LastError = 5, "version 3 did not get ready (not ready after 1m0s); the rollout stopped and this instance still runs version 2"
	backoff := clientsdk.InstanceStatus{App: "web", Instance: 1, Node: "a", State: clientsdk.StateBackoff, SpecRevision: 5, Restarts: 4, LastExitCode: &code3}
	for _, c := range []struct {
		name string
		spec clientsdk.AppSpec
		st   []clientsdk.InstanceStatus
		msg  string
	}{
		{"updating", app(3, web), []clientsdk.InstanceStatus{ready(running(0, "a", time.Second), 5), ready(running(1, "a", time.Hour), 4), ready(running(2, "a", time.Hour), 4)},
			"3/3 running; updating: 1/3 on the new revision"},
		{"not ready yet", app(2, web), []clientsdk.InstanceStatus{ready(running(0, "a", time.Minute), 5), running(1, "a", time.Second)},
			"2/2 running; 1 not ready yet"},
		{"a stopped rollout says where and why", app(2, web), []clientsdk.InstanceStatus{ready(running(0, "a", time.Hour), 4), failed},
			"2/2 running; #1: " + failed.LastError},
		{"restarting after a long run (no crash loop)", app(2), []clientsdk.InstanceStatus{running(0, "a", time.Hour), backoff},
			"1/2 running; #1 restarting after exit code 3 (4 restarts)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sum := broker.Summarize(c.spec, c.st, liveNodes(a), now)
			if sum.Message != c.msg || sum.State != clientsdk.AppAlive {
				t.Fatalf("got %s - %q\nwant alive - %q", sum.State, sum.Message, c.msg)
			}
		})
	}
}
