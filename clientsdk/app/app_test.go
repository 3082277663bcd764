package app_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/clientsdk/app"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
)

type stats struct {
	Instance  int            `json:"instance"`
	Count     map[string]int `json:"count"`
	InOrder   bool           `json:"in_order"`
	Dups      int            `json:"dups"`
	Published int            `json:"published"`
	APIError  string         `json:"api_error"`
}

func startNode(t *testing.T, url, id string) {
	t.Helper()
	nc := testutil.Connect(t, url)
	r, err := runner.New(context.Background(), nc, runner.WithNodeID(id), runner.WithDataDir(testutil.TempDir(t)),
		runner.WithNATSURL(url))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
}

// TestPubSubAcrossInstancesAndNodes runs 3 instances of a Go app on 2 runner
// nodes: an event published by instance 0 reaches 1 and 2 exactly once and
// never 0, and a burst of 10,000 arrives complete and in order.
func TestPubSubAcrossInstancesAndNodes(t *testing.T) {
	b := testutil.StartBroker(t)
	startNode(t, b.NATSURL(), "node-a")
	startNode(t, b.NATSURL(), "node-b")
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	worker := testutil.BuildGo(t, "./internal/testutil/workers/pubsub")
	nc := c.Conn()
	// Wait until both nodes are registered so that instances spread.
	testutil.WaitFor(t, 5*time.Second, "2 nodes", func() bool {
		var nodes []clientsdk.Node
		msg, err := nc.Request(clientsdk.APISubject(clientsdk.VerbNodes), nil, time.Second)
		return err == nil && json.Unmarshal(msg.Data, &nodes) == nil && len(nodes) == 2
	})
	if _, err := c.Push(context.Background(), clientsdk.AppSpec{Name: "chat", Instances: 3}, worker, nil); err != nil {
		t.Fatal(err)
	}
	get := func(i int) (stats, bool) {
		var s stats
		msg, err := nc.Request("dartup.app.chat.stats."+strconv.Itoa(i), nil, time.Second)
		return s, err == nil && json.Unmarshal(msg.Data, &s) == nil
	}
	testutil.WaitFor(t, 20*time.Second, "3 instances subscribed", func() bool {
		for i := range 3 {
			if _, ok := get(i); !ok {
				return false
			}
		}
		return true
	})
	apps, _ := c.List(context.Background())
	nodes := map[string]bool{}
	for _, in := range apps[0].Instances {
		nodes[in.Node] = true
	}
	if len(nodes) != 2 {
		t.Fatalf("instances not on 2 nodes: %+v", apps[0].Instances)
	}
	trigger := func(n int) {
		m := &nats.Msg{Subject: app.EventSubject("chat", "trigger"), Header: nats.Header{app.HeaderSender: []string{"test"}}}
		m.Data, _ = json.Marshal(map[string]int{"publisher": 0, "n": n})
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{1, 10000} {
		before := map[int]int{}
		for i := range 3 {
			s, _ := get(i)
			before[i] = s.Count["chat.0"]
		}
		trigger(n)
		testutil.WaitFor(t, 30*time.Second, "instances 1 and 2 to receive the burst", func() bool {
			s1, ok1 := get(1)
			s2, ok2 := get(2)
			return ok1 && ok2 && s1.Count["chat.0"] >= before[1]+n && s2.Count["chat.0"] >= before[2]+n
		})
		s0, _ := get(0)
		testutil.WaitFor(t, 5*time.Second, "instance 0 to finish publishing", func() bool {
			s0, _ = get(0)
			return s0.Published >= n
		})
		for i := 1; i <= 2; i++ {
			s, _ := get(i)
			if got := s.Count["chat.0"] - before[i]; got != n || !s.InOrder || s.Dups != 0 {
				t.Fatalf("instance %d after %d messages: got %d (in order %v, dups %d)", i, n, got, s.InOrder, s.Dups)
			}
		}
		if len(s0.Count) != 0 {
			t.Fatalf("the sender received its own events: %+v", s0)
		}
	}
}

func TestPublishValidatesEventNames(t *testing.T) {
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL(), nats.NoEcho())
	a := app.NewConn(nc, app.Instance{App: "x", Index: 0})
	for _, ev := range []string{"a.b", "*", ">", "with space", ""} {
		if err := a.Publish(context.Background(), ev, 1); err == nil {
			t.Errorf("Publish(%q) succeeded", ev)
		}
		if _, err := a.Subscribe(context.Background(), ev); err == nil {
			t.Errorf("Subscribe(%q) succeeded", ev)
		}
	}
	// Publishing without subscribers is fine.
	if err := a.Publish(context.Background(), "nobody", map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
}

func TestInstanceFromEnv(t *testing.T) {
	t.Setenv("DARTUP_APP", "")
	if _, err := app.InstanceFromEnv(); err == nil {
		t.Fatal("no error without DARTUP_APP")
	}
	t.Setenv("DARTUP_APP", "web")
	t.Setenv("DARTUP_INSTANCE", "3")
	t.Setenv("DARTUP_NODE", "n1")
	in, err := app.InstanceFromEnv()
	if err != nil || in.ID() != "web.3" || in.Node != "n1" {
		t.Fatalf("%+v %v", in, err)
	}
}
