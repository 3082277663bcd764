package e2e

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	natsgo "github.com/nats-io/nats.go"
)

// Direct lambdas in a cluster of three `serve`s, each with its runner and
// leaf server: a burst of fast and slow requests sent through every
// server is answered exactly once, by the function, and none waits in a
// runner's queue while its workers are free (nats-server may give a
// re-published queue head to another server).
func TestDirectLambdasInACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	c := startCluster(t)
	s1 := c.servers[0]
	bin := testutil.BuildGo(t, "./internal/testutil/workers/lambdanative")
	s1.dartup("push", "--lambda", "--name", "fast", "--protocol", "nats", "--max-workers", "2", "--queue", "1000", bin)
	conns := make([]*natsgo.Conn, len(c.urls))
	for i, u := range c.urls {
		conns[i] = testutil.Connect(t, u)
	}
	testutil.WaitFor(t, 30*time.Second, "the lambda to answer through every server", func() bool {
		for _, nc := range conns {
			m, err := nc.Request(clientsdk.LambdaSubject("fast"), []byte("x"), 5*time.Second)
			if err != nil || string(m.Data) != "Hello, x!" {
				return false
			}
		}
		return true
	})
	const n = 300
	var counts [n]atomic.Int32
	var mu sync.Mutex
	answers := make([]string, n)
	got := make([]chan struct{}, n)
	for i := range got {
		got[i] = make(chan struct{})
	}
	prefix := natsgo.NewInbox()
	var subs []*natsgo.Subscription
	for _, nc := range conns {
		sub, err := nc.Subscribe(prefix+".*", func(m *natsgo.Msg) {
			i, err := strconv.Atoi(m.Subject[len(prefix)+1:])
			if err != nil || i < 0 || i >= n {
				return
			}
			if counts[i].Add(1) == 1 {
				mu.Lock()
				answers[i] = string(m.Data)
				mu.Unlock()
				close(got[i])
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
		_ = nc.Flush()
	}
	var wg sync.WaitGroup
	for i := range n {
		nc := conns[i%len(conns)]
		wg.Go(func() {
			data := strconv.Itoa(i)
			if i%4 == 0 {
				data = `{"sleep_ms":30,"name":"` + data + `"}`
			}
			// Each server's subscription to the prefix: one answer reaches
			// each of them, so an answer is counted once per server.
			if err := nc.PublishRequest(clientsdk.LambdaSubject("fast"), prefix+"."+strconv.Itoa(i), []byte(data)); err != nil {
				t.Error(err)
			}
			select {
			case <-got[i]:
			case <-time.After(30 * time.Second):
				t.Errorf("request %d: no answer", i)
			}
		})
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond) // room for a duplicate answer to show
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if c := counts[i].Load(); c != int32(len(conns)) || answers[i] != "Hello, "+strconv.Itoa(i)+"!" {
			t.Errorf("request %d: %d answers over %d subscribers, %q", i, c, len(conns), answers[i])
		}
	}
}
