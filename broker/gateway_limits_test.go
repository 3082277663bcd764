package broker_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// Idle clients cannot hold more than the gateway's connection cap: the
// next client waits, and is served once one of them goes.
func TestGatewayConnectionCap(t *testing.T) {
	b := testutil.StartBroker(t, func(c *broker.Config) { c.HTTPMaxConns = 2 })
	addr := strings.TrimPrefix(b.HTTPURL(), "http://")
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	time.Sleep(100 * time.Millisecond) // both accepted
	quick := &http.Client{Timeout: 500 * time.Millisecond}
	if resp, err := quick.Get(b.HTTPURL() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a third connection was served past a cap of 2")
	}
	_ = idle[0].Close()
	slow := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := slow.Get(b.HTTPURL() + "/healthz")
	if err != nil {
		t.Fatalf("after an idle client went: %v", err)
	}
	resp.Body.Close()
	_ = idle[1].Close()
}

// /healthz says 503 when JetStream does not take writes (here the status
// stream is gone), not only when the server is down.
func TestHealthzProbesWrites(t *testing.T) {
	b := testutil.StartBroker(t)
	get := func() int {
		resp, err := http.Get(b.HTTPURL() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != 200 {
		t.Fatalf("healthy server: %d", code)
	}
	nc := testutil.Connect(t, b.NATSURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), "KV_"+clientsdk.StatusBucket); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "/healthz to fail", func() bool { return get() == 503 })
}
