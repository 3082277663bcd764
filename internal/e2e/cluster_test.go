package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// freePortRun returns the first of n consecutive ports that are free on
// every interface now, below the ephemeral range (where outgoing
// connections would take them), for `push --port P -j n`.
func freePortRun(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(10000)
		var ls []net.Listener
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if len(ls) == n {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports in 20000-30000", n)
	return 0
}

// cluster is three clustered `dartup serve` processes.
type cluster struct {
	servers []*server
	urls    []string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	nats := freePorts(t, 3)
	routes := freePorts(t, 3)
	c := &cluster{servers: make([]*server, 3)}
	var wg sync.WaitGroup
	for i := range 3 {
		var others []string
		for j := range 3 {
			if j != i {
				others = append(others, fmt.Sprintf("nats://127.0.0.1:%d", routes[j]))
			}
		}
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", nats[i]))
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.servers[i] = startServeAt(t, testutil.TempDir(t), fmt.Sprintf("127.0.0.1:%d", nats[i]),
				"--name", fmt.Sprintf("s%d", i+1), "--cluster-addr", fmt.Sprintf("127.0.0.1:%d", routes[i]),
				"--routes", strings.Join(others, ","))
		}()
	}
	wg.Wait()
	return c
}

// runnerProc is a `dartup runner` process.
type runnerProc struct {
	cmd *exec.Cmd
	log *testutil.SyncBuffer
}

func startRunner(t *testing.T, urls []string, name, dir string) *runnerProc {
	t.Helper()
	return startRunnerWith(t, nil, "--server", strings.Join(urls, ","), "--name", name, "--data", dir)
}

// startRunnerWith starts `dartup runner ARGS…` with env added to its environment.
func startRunnerWith(t *testing.T, env []string, args ...string) *runnerProc {
	t.Helper()
	cmd := exec.Command(testutil.Dartup(t), append([]string{"runner"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	name := strings.Join(args, " ")
	var log testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &runnerProc{cmd: cmd, log: &log}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_, _ = cmd.Process.Wait()
		}
		if t.Failed() {
			t.Logf("runner %s log:\n%s", name, log.String())
		}
	})
	return r
}

func (r *runnerProc) kill9() {
	_ = r.cmd.Process.Kill()
	_, _ = r.cmd.Process.Wait()
}

func appSummary(t *testing.T, s *server, app string) clientsdk.AppSummary {
	out, err := s.try("list", "--json")
	if err != nil {
		return clientsdk.AppSummary{}
	}
	var apps []clientsdk.AppSummary
	_ = json.Unmarshal([]byte(out), &apps)
	for _, a := range apps {
		if a.Name == app {
			return a
		}
	}
	return clientsdk.AppSummary{}
}

func TestClusterSpreadsAndFailsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	c := startCluster(t)
	s1 := c.servers[0]
	rdir := testutil.TempDir(t)
	r := startRunner(t, c.urls, "r1", rdir)
	testutil.WaitFor(t, 30*time.Second, "4 nodes (3 servers + 1 runner)", func() bool {
		out, err := s1.try("nodes", "--json")
		var nodes []clientsdk.Node
		return err == nil && json.Unmarshal([]byte(out), &nodes) == nil && len(nodes) == 4
	})
	s1.dartup("push", "--name", "clusterweb", "-j", "4", "--env", "WORKER_MODE=run", worker)
	var placed map[string]int
	testutil.WaitFor(t, 30*time.Second, "web running 4/4", func() bool {
		a := appSummary(t, s1, "clusterweb")
		placed = map[string]int{}
		for _, in := range a.Instances {
			if in.State == clientsdk.StateRunning {
				placed[in.Node]++
			}
		}
		return a.Running == 4
	})
	if len(placed) < 2 {
		t.Fatalf("4 instances on %d node(s): %v", len(placed), placed)
	}
	t.Logf("placement: %v", placed)

	// kill -9 the runner node; if it got nothing, push more until it has some.
	if placed["r1"] == 0 {
		s1.dartup("push", "--name", "clusterweb", "-j", "8", "--env", "WORKER_MODE=run", worker)
		testutil.WaitFor(t, 30*time.Second, "an instance on r1", func() bool {
			for _, in := range appSummary(t, s1, "clusterweb").Instances {
				if in.Node == "r1" && in.State == clientsdk.StateRunning {
					return true
				}
			}
			return false
		})
	}
	want := len(appSummary(t, s1, "clusterweb").Instances)
	r.kill9()
	killed := time.Now()
	testutil.WaitFor(t, 30*time.Second, "every instance running on a live node", func() bool {
		a := appSummary(t, s1, "clusterweb")
		if a.Running != want {
			return false
		}
		for _, in := range a.Instances {
			if in.Node == "r1" {
				return false
			}
		}
		return true
	})
	t.Logf("node death → all its instances running elsewhere: %s (goal ≤ 5s with the 3s node timeout)", time.Since(killed).Round(10*time.Millisecond))

	// The node comes back: it must not run its old instances a second time.
	startRunner(t, c.urls, "r1", rdir)
	testutil.WaitFor(t, 10*time.Second, "r1 registered again", func() bool {
		out, _ := s1.try("nodes", "--json")
		return strings.Contains(out, `"id": "r1"`)
	})
	time.Sleep(2 * time.Second) // give a wrong double start the chance to show (what we assert is an absence)
	if n := len(procsOf("clusterweb")); n != want {
		t.Fatalf("%d processes of web after r1 returned, want %d", n, want)
	}

	// Lose one of three servers: the cluster keeps working.
	c.servers[2].kill9()
	hello := testutil.BuildGo(t, "./internal/testutil/workers/lambdahello")
	// The push may meet JetStream electing leaders: the CLI retries for
	// 30 s; a user would try again after that, and so does this test (and
	// says so).
	tries := 0
	testutil.WaitFor(t, 90*time.Second, "push after losing a server", func() bool {
		tries++
		out, err := s1.try("push", "--lambda", "--name", "hello", hello)
		if err != nil {
			t.Logf("push %d after losing a server: %v\n%s", tries, err, out)
		}
		return err == nil
	})
	testutil.WaitFor(t, 30*time.Second, "invoke hello after losing a server", func() bool {
		out, err := s1.try("invoke", "hello", "--data", `{"name":"cluster"}`)
		return err == nil && strings.Contains(out, "cluster")
	})
	// s3's own runner died with it: its instances move to the survivors.
	testutil.WaitFor(t, 30*time.Second, "web running fully again without s3", func() bool {
		a := appSummary(t, s1, "clusterweb")
		for _, in := range a.Instances {
			if in.Node == "s3" {
				return false
			}
		}
		return a.Running == want
	})
	var ai clientsdk.AppInfo
	testutil.WaitFor(t, 30*time.Second, "info web once the cluster has re-elected its leaders", func() bool {
		info, err := s1.try("info", "clusterweb", "--json")
		return err == nil && json.Unmarshal([]byte(info), &ai) == nil && ai.Spec.Artifact != nil
	})
	// The artifact is still whole: fetch it back and check its digest.
	nc, err := natsgo.Connect(s1.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	obj, err := js.ObjectStore(context.Background(), clientsdk.ArtifactsBucket)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := obj.Get(context.Background(), ai.Spec.Artifact.Object)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, rd); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ai.Spec.Artifact.SHA256 {
		t.Fatalf("artifact digest %s, spec says %s", got, ai.Spec.Artifact.SHA256)
	}
}

// startServeAt is startServe with a fixed NATS address.
func startServeAt(t *testing.T, dir, natsAddr string, args ...string) *server {
	return startServe(t, dir, append([]string{"--nats-addr", natsAddr}, args...)...)
}
