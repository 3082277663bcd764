package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/dartup/dartup/clientsdk/app"
	"github.com/nats-io/nats.go"
)

// psPair is a publisher and a subscriber connection on one server.
type psPair struct {
	pub, subc *nats.Conn
	sub       *nats.Subscription
}

func newPSPair(url string) (*psPair, error) {
	pub, err := nats.Connect(url, nats.Name("bench-pub"))
	if err != nil {
		return nil, err
	}
	subc, err := nats.Connect(url, nats.Name("bench-sub"))
	if err != nil {
		pub.Close()
		return nil, err
	}
	sub, err := subc.SubscribeSync("bench.pubsub")
	if err == nil {
		err = subc.Flush()
	}
	if err != nil {
		pub.Close()
		subc.Close()
		return nil, err
	}
	return &psPair{pub: pub, subc: subc, sub: sub}, nil
}

func (p *psPair) close() { p.pub.Close(); p.subc.Close() }

// once publishes one message and times its arrival at the other connection.
func (p *psPair) once(payload []byte) (time.Duration, error) {
	t0 := time.Now()
	if err := p.pub.Publish("bench.pubsub", payload); err != nil {
		return 0, err
	}
	if _, err := p.sub.NextMsg(5 * time.Second); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// psPath is one way of getting a message from one connection to another.
type psPath struct {
	once  func() (time.Duration, error)
	close func()
}

func rawPath(url string, payload []byte) (*psPath, error) {
	p, err := newPSPair(url)
	if err != nil {
		return nil, err
	}
	return &psPath{once: func() (time.Duration, error) { return p.once(payload) }, close: p.close}, nil
}

// appPath is the app SDK's pub/sub: instance 0 publishes, instance 1 receives.
func appPath(ctx context.Context, url string, value any) (*psPath, error) {
	nc0, err := nats.Connect(url, nats.NoEcho(), nats.Name("bench-app-0"))
	if err != nil {
		return nil, err
	}
	nc1, err := nats.Connect(url, nats.NoEcho(), nats.Name("bench-app-1"))
	if err != nil {
		nc0.Close()
		return nil, err
	}
	a0 := app.NewConn(nc0, app.Instance{App: "bench", Index: 0})
	a1 := app.NewConn(nc1, app.Instance{App: "bench", Index: 1})
	closeAll := func() { a0.Close(); a1.Close() }
	sub, err := a1.Subscribe(ctx, "chat")
	if err != nil {
		closeAll()
		return nil, err
	}
	return &psPath{close: closeAll, once: func() (time.Duration, error) {
		t0 := time.Now()
		if err := a0.Publish(ctx, "chat", value); err != nil {
			return 0, err
		}
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := sub.Next(nctx); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}}, nil
}

// figPubSub: pub/sub between two instances with the app SDK vs bare NATS
// pub/sub on the same server, and a bare nats-server (figure 6).
func (h *harness) figPubSub(ctx context.Context) []*Figure {
	f := &Figure{ID: "pubsub", Num: 6, Title: "pub/sub between two instances", Goal: "app SDK p50 ≤ 1.2× bare NATS pub/sub on the same server"}
	fail := func(err error) []*Figure {
		f.notMeasured(err.Error())
		f.add(unmeasured("clientsdk/app Publish → Subscribe.Next on dartup serve", "dartup", err.Error()))
		return []*Figure{f}
	}
	s, err := startServe(ctx, h.bins.dartup, filepath.Join(h.tmp, "pubsub"), filepath.Join(h.logDir, "serve-pubsub.log"))
	if err != nil {
		return fail(err)
	}
	defer s.stop()
	bare, url, err := startChild(h.bins.natsserver, nil)
	if err != nil {
		return fail(err)
	}
	defer bare.stop()

	value := map[string]any{"user": 42, "text": "hello from instance 0 to the others"}
	payload, _ := json.Marshal(value)
	ap, err := appPath(ctx, s.natsURL, value)
	if err != nil {
		return fail(err)
	}
	defer ap.close()
	dp, err := rawPath(s.natsURL, payload)
	if err != nil {
		return fail(err)
	}
	defer dp.close()
	bp, err := rawPath(url, payload)
	if err != nil {
		return fail(err)
	}
	defer bp.close()

	n, round := h.n(5000, 1000), 250
	var appS, same, bareS []time.Duration
	paths := []struct {
		p    *psPath
		into *[]time.Duration
	}{{ap, &appS}, {dp, &same}, {bp, &bareS}}
	for _, p := range paths { // warm-up
		for i := 0; i < 200; i++ {
			if _, err := p.p.once(); err != nil {
				return fail(err)
			}
		}
	}
	for len(appS) < n && ctx.Err() == nil {
		for _, p := range paths {
			for i := 0; i < round; i++ {
				d, err := p.p.once()
				if err != nil {
					return fail(err)
				}
				*p.into = append(*p.into, d)
			}
		}
	}
	b := f.add(latencyRow("bare nats.go pub/sub on the same dartup server, 2 connections", "baseline", "µs", same))
	b.Short = "bare NATS"
	r := f.add(latencyRow("clientsdk/app: instance 0 Publish → instance 1 Subscription.Next", "dartup", "µs", appS))
	ratio(r, b)
	x := f.add(latencyRow("bare nats.go pub/sub on a bare nats-server (same module, no JetStream)", "baseline", "µs", bareS))
	ratio(x, b)
	f.judge(r.Ratio, 1.2, "×")
	f.Note = fmt.Sprintf("Each sample publishes one event (%d bytes of JSON) and waits until the other connection has it (one-way latency, one clock), in alternating rounds of %d per path. The app SDK's two instances are two NoEcho connections made with app.NewConn in the harness (what app.Connect makes inside a worker), so the figure includes JSON encoding and the sender header. The servers run as their own processes on loopback.", len(payload), round)
	return []*Figure{f}
}
