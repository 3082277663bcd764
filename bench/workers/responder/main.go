// Command responder is the floor of the invoke benchmark: a bare nats.go
// responder that answers every request on SUBJECT with the request's body.
//
// Usage: responder NATS_URL SUBJECT [CONNS RATE]. With CONNS and RATE it is
// instead CONNS responders in one queue group, each on its own connection
// and answering one request at a time, paced so that together they answer
// at most RATE requests per second (0: unpaced) — the shape of a pool of
// one-at-a-time workers at a given rate, without any supervisor. It prints
// "ready" once subscribed.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	if len(os.Args) != 3 && len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: responder NATS_URL SUBJECT [CONNS RATE]")
		os.Exit(2)
	}
	var err error
	if len(os.Args) == 5 {
		err = pool(os.Args[1], os.Args[2], os.Args[3], os.Args[4])
	} else {
		err = single(os.Args[1], os.Args[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

// single subscribes one connection that answers every request at once.
func single(url, subject string) error {
	nc, err := nats.Connect(url, nats.Name("bench-responder"))
	if err != nil {
		return err
	}
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return err
	}
	return nc.Flush()
}

// pool subscribes conns connections in a queue group, each answering one
// request at a time, at most rate/conns a second.
func pool(url, subject, conns, rate string) error {
	n, err := strconv.Atoi(conns)
	if err != nil || n < 1 || n > 64 {
		return fmt.Errorf("CONNS %q: want 1 to 64", conns)
	}
	perSecond, err := strconv.ParseFloat(rate, 64)
	if err != nil || perSecond < 0 || perSecond > 1e7 {
		return fmt.Errorf("RATE %q: want requests per second, 0 to 10000000 (0: unpaced)", rate)
	}
	var interval time.Duration
	if perSecond > 0 {
		interval = time.Duration(float64(n) / perSecond * 1e9)
	}
	for i := range n {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench-responder-%d", i)))
		if err != nil {
			return err
		}
		sub, err := nc.QueueSubscribeSync(subject, "pool")
		if err != nil {
			return err
		}
		if err := nc.Flush(); err != nil {
			return err
		}
		go answer(sub, interval)
	}
	return nil
}

// answer answers sub's requests one at a time, one per interval at most:
// each answer waits for its slot, and a late wake-up makes the next waits
// shorter (up to 20 ms of lag is made up), so the rate holds where
// time.Sleep overshoots by far more than the interval.
func answer(sub *nats.Subscription, interval time.Duration) {
	next := time.Now()
	for {
		m, err := sub.NextMsg(time.Hour)
		if err != nil {
			if err == nats.ErrTimeout {
				continue
			}
			return
		}
		if interval > 0 {
			now := time.Now()
			if next = next.Add(interval); next.Before(now.Add(-20 * time.Millisecond)) {
				next = now // a lull is not made up
			}
			time.Sleep(next.Sub(now))
		}
		_ = m.Respond(m.Data)
	}
}
