package runner_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
)

// tcpProxy forwards connections from a loopback port to target. Cut closes
// the listener and every connection through it (a network partition);
// Restore listens again on the same port.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln { // cut meanwhile
				p.mu.Unlock()
				in.Close()
				out.Close()
				return
			}
			p.conns[in], p.conns[out] = struct{}{}, struct{}{}
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
}

// Cut closes the listener and all connections through the proxy.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

// Restore listens on the proxy's port again.
func (p *tcpProxy) Restore() {
	p.t.Helper()
	var ln net.Listener
	testutil.WaitFor(p.t, 5*time.Second, "listening again on "+p.addr, func() bool {
		var err error
		ln, err = net.Listen("tcp", p.addr)
		return err == nil
	})
	p.serve(ln)
}

// appProcs returns the pids of live, non-zombie processes whose environment
// has DARTUP_APP=app.
func appProcs(app string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !alive(pid) {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == "DARTUP_APP="+app {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// TestPartitionedRunnerFencesAndDoesNotDoubleRun cuts a runner's NATS
// connection (the TCP proxy it connects through closes): its claims move to
// the other node within a few seconds, it stops its own copies once it has
// been cut off for longer than the node timeout, and when the network comes
// back it sees the claims moved and does not start them again.
func TestPartitionedRunnerFencesAndDoesNotDoubleRun(t *testing.T) {
	e := newEnv(t) // node-a, on the broker directly
	p := startProxy(t, strings.TrimPrefix(e.b.NATSURL(), "nats://"))
	ncB := testutil.Connect(t, "nats://"+p.addr, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.IgnoreDiscoveredServers())
	opts := []runner.Option{runner.WithNodeID("node-b"), runner.WithDataDir(testutil.TempDir(t)),
		runner.WithTiming(250*time.Millisecond, 1500*time.Millisecond)}
	if testing.Verbose() {
		opts = append(opts, runner.WithLogger(testutil.TestLogger(t)))
	}
	rB, err := runner.New(context.Background(), ncB, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := rB.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rB.Stop(context.Background()) })
	testutil.WaitFor(t, 5*time.Second, "2 nodes", func() bool {
		n, err := e.c.Nodes(context.Background())
		return err == nil && len(n) == 2
	})

	e.push("part", "run", func(s *clientsdk.AppSpec) { s.Instances = 2 })
	onB := map[int]int{} // instance → pid on node-b
	testutil.WaitFor(t, 30*time.Second, "2 instances running, one per node", func() bool {
		clear(onB)
		nodes := map[string]bool{}
		for i := range 2 {
			st, ok := e.statusOf("part", i)
			if !ok || st.State != clientsdk.StateRunning || !alive(st.PID) {
				return false
			}
			nodes[st.Node] = true
			if st.Node == "node-b" {
				onB[i] = st.PID
			}
		}
		return len(nodes) == 2
	})

	p.Cut()
	cut := time.Now()
	testutil.WaitFor(t, 10*time.Second, "node-b's instance running on node-a", func() bool {
		for i := range 2 {
			st, ok := e.statusOf("part", i)
			if !ok || st.State != clientsdk.StateRunning || st.Node != "node-a" || !alive(st.PID) {
				return false
			}
		}
		return true
	})
	movedIn := time.Since(cut)
	testutil.WaitFor(t, 10*time.Second, "node-b to fence itself: its copy stopped", func() bool {
		for _, pid := range onB {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	fencedIn := time.Since(cut)
	t.Logf("partition (node timeout 1.5s): claims moved in %s, node-b's copy stopped in %s",
		movedIn.Round(time.Millisecond), fencedIn.Round(time.Millisecond))
	after := map[int]int{}
	for i := range 2 {
		st, _ := e.statusOf("part", i)
		after[i] = st.PID
	}

	// From the moment the network is back, watch for a second copy: a
	// node that trusted its stale view would start one at once and stop it
	// only when its watcher caught up, a few milliseconds later.
	stop := make(chan struct{})
	most := make(chan []int, 1)
	go func() {
		var worst []int
		for started := time.Now(); ; {
			if pids := appProcs("part"); len(pids) > len(worst) {
				worst = pids
			}
			select {
			case <-stop:
				most <- worst
				return
			default:
			}
			if time.Since(started) > time.Second {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	p.Restore()
	testutil.WaitFor(t, 10*time.Second, "node-b reconnected and heartbeating", func() bool {
		if !ncB.IsConnected() {
			return false
		}
		nodes, err := e.c.Nodes(context.Background())
		if err != nil {
			return false
		}
		for _, n := range nodes {
			if n.ID == "node-b" && time.Since(n.LastSeen) < 500*time.Millisecond {
				return true
			}
		}
		return false
	})
	// What is asserted is an absence (no second copy): give a wrong start a
	// few node timeouts to show.
	time.Sleep(4 * time.Second)
	close(stop)
	if pids := <-most; len(pids) != 2 {
		t.Fatalf("%d processes of part at once after node-b came back, want 2: %v", len(pids), pids)
	}
	for i := range 2 {
		st, ok := e.statusOf("part", i)
		if !ok || st.Node != "node-a" || st.State != clientsdk.StateRunning || st.PID != after[i] || !alive(st.PID) {
			t.Errorf("instance %d after node-b came back: %+v, want running on node-a as pid %d", i, st, after[i])
		}
	}
}
