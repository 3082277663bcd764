package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// TestCollectDeadNodeLambdas: the lambda status entries of a node with no
// live heartbeat are collected (list, info and /metrics stop showing them);
// a live node's entries and instance entries stay.
func TestCollectDeadNodeLambdas(t *testing.T) {
	b := testutil.StartBroker(t)
	js, err := jetstream.New(testutil.Connect(t, b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nodes, _ := js.KeyValue(ctx, clientsdk.NodesBucket)
	status, _ := js.KeyValue(ctx, clientsdk.StatusBucket)
	put := func(kv jetstream.KeyValue, key string, v any) {
		t.Helper()
		data, _ := json.Marshal(v)
		if _, err := kv.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
	}
	put(nodes, "alive", clientsdk.Node{ID: "alive", Timeout: clientsdk.Duration(time.Minute)})
	stats := &clientsdk.LambdaStats{Invocations: 7}
	put(status, clientsdk.LambdaStatusKey("fn", "alive"), clientsdk.InstanceStatus{App: "fn", Instance: -1, Node: "alive", Lambda: stats})
	put(status, clientsdk.LambdaStatusKey("fn", "ghost"), clientsdk.InstanceStatus{App: "fn", Instance: -1, Node: "ghost", Lambda: stats})
	put(status, clientsdk.InstanceKey("web", 0), clientsdk.InstanceStatus{App: "web", Node: "ghost", State: clientsdk.StateLost})

	n, err := b.CollectDeadNodeLambdas(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("collected %d entries (%v), want 1", n, err)
	}
	if _, err := status.Get(ctx, clientsdk.LambdaStatusKey("fn", "ghost")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the dead node's lambda entry is still there (%v)", err)
	}
	for _, key := range []string{clientsdk.LambdaStatusKey("fn", "alive"), clientsdk.InstanceKey("web", 0)} {
		if _, err := status.Get(ctx, key); err != nil {
			t.Errorf("%s was collected: %v", key, err)
		}
	}
	if n, err := b.CollectDeadNodeLambdas(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("a second collection with a long age took %d (%v)", n, err)
	}
}
