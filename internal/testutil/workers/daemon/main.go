// Command daemon is a test worker for dartup's supervisor. Its behaviour is
// chosen by WORKER_MODE:
//
//	run          print "ready pid=PID instance=I" and run until signalled
//	crash        exit 1 at once
//	exit-after   run WORKER_DURATION (a Go duration), then exit 0
//	ignore-term  ignore SIGTERM and run until SIGKILL
//	fork         start a child that sleeps forever, print "child=PID", then run
//
// It writes its pid to $WORKER_PIDFILE when set.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		forever()
	}
	sig := make(chan os.Signal, 1)
	if os.Getenv("WORKER_MODE") != "ignore-term" {
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT) // before "ready": a stop right after start exits 0
	}
	if f := os.Getenv("WORKER_PIDFILE"); f != "" {
		_ = os.WriteFile(f, []byte(fmt.Sprint(os.Getpid())), 0o644)
	}
	fmt.Printf("ready pid=%d instance=%s port=%s node=%s\n", os.Getpid(), os.Getenv("DARTUP_INSTANCE"), os.Getenv("PORT"), os.Getenv("DARTUP_NODE"))
	fmt.Fprintln(os.Stderr, "stderr line from", os.Getpid())
	switch os.Getenv("WORKER_MODE") {
	case "crash":
		os.Exit(1)
	case "exit-after":
		d, _ := time.ParseDuration(os.Getenv("WORKER_DURATION"))
		time.Sleep(d)
		os.Exit(0)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		forever()
	case "fork":
		c := exec.Command(os.Args[0], "child")
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("child=%d\n", c.Process.Pid)
	}
	<-sig
	fmt.Println("got SIGTERM, exiting")
}

// forever blocks without tripping Go's deadlock detector.
func forever() {
	for {
		time.Sleep(time.Hour)
	}
}
