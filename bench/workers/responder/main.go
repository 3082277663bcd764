// Command responder is the floor of the invoke benchmark: a bare nats.go
// responder that answers every request on SUBJECT with the request's body.
// Usage: responder NATS_URL SUBJECT. It prints "ready" once subscribed.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: responder NATS_URL SUBJECT")
		os.Exit(2)
	}
	nc, err := nats.Connect(os.Args[1], nats.Name("bench-responder"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := nc.Subscribe(os.Args[2], func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := nc.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	nc.Close()
}
