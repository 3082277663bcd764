package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// nativeFloor is the protocol floor of the native protocol: the least code
// that takes a request on a NATS subject and hands it to a native worker
// (the same bench/workers/native, forked by hand) on its subject, with the
// caller's reply subject in Dartup-Reply, so that the worker answers the
// caller directly. Its done notices are received and dropped: no pool, no
// limits, no timeouts, no stats — what is left is the cost of one more
// message than bare request-reply.
type nativeFloor struct {
	cmd      *exec.Cmd
	sub, ctl *nats.Subscription
}

func startNativeFloor(nc *nats.Conn, natsURL, bin, subject string) (*nativeFloor, error) {
	worker, control := "bench.nativefloor.worker", nats.NewInbox()
	ready := make(chan struct{}, 1)
	ctl, err := nc.Subscribe(control, func(m *nats.Msg) {
		if m.Header.Get(clientsdk.HeaderNotice) == clientsdk.NoticeReady {
			select {
			case ready <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	f := &nativeFloor{ctl: ctl}
	f.cmd = exec.Command(bin)
	f.cmd.Env = append(os.Environ(), "NATS_URL="+natsURL, clientsdk.EnvLambdaSubject+"="+worker, clientsdk.EnvLambdaControl+"="+control)
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		f.close()
		return nil, err
	}
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		f.close()
		return nil, errors.New("the native floor's worker did not get ready in 10 s")
	}
	f.sub, err = nc.Subscribe(subject, func(m *nats.Msg) {
		_ = nc.PublishMsg(&nats.Msg{Subject: worker, Data: m.Data, Header: nats.Header{
			clientsdk.HeaderRequestID: {"floor"}, clientsdk.HeaderLambdaReply: {m.Reply}}})
	})
	if err != nil {
		f.close()
		return nil, err
	}
	return f, nc.Flush()
}

func (f *nativeFloor) close() {
	if f.sub != nil {
		_ = f.sub.Unsubscribe()
	}
	_ = f.ctl.Unsubscribe()
	if f.cmd != nil && f.cmd.Process != nil {
		_ = f.cmd.Process.Kill()
		_ = f.cmd.Wait()
	}
}
