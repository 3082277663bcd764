package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// rieProc is the AWS Lambda Runtime Interface Emulator running the bootstrap.
type rieProc struct {
	cmd  *exec.Cmd
	url  string
	log  *os.File
	done chan struct{}
}

// startRIE runs `RIE --runtime-interface-emulator-address A
// --runtime-api-address B BOOTSTRAP` on free loopback ports and waits until it
// accepts connections. The emulator starts the bootstrap on the first
// invocation.
func startRIE(ctx context.Context, rie, bootstrap, logPath string) (*rieProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(rie, "--log-level", "error", "--runtime-interface-emulator-address", addr, "--runtime-api-address", apiAddr, bootstrap)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_FUNCTION_TIMEOUT=30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start the emulator: %w", err)
	}
	p := &rieProc{cmd: cmd, log: lf, done: make(chan struct{}),
		url: "http://" + addr + "/2015-03-31/functions/function/invocations"}
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			lf.Close()
			return nil, fmt.Errorf("the emulator exited: %s\n%s", cmd.ProcessState, tail(logPath, 10))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("the emulator did not listen on %s within 10s", addr)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *rieProc) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.log.Close()
}
