// Command daemon is the benchmark's idle daemon, run unchanged by dartup and
// by PM2. At start it writes "PID START_UNIX_NANO" to $WORKER_PIDFILE (via a
// rename, so a reader never sees half a file): the harness times a respawn
// from the SIGKILL it sent to the start time the new process recorded, the
// same way for both supervisors. Then it idles until SIGTERM or SIGINT.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	start := time.Now().UnixNano()
	if f := os.Getenv("WORKER_PIDFILE"); f != "" {
		tmp := fmt.Sprintf("%s.%d.tmp", f, os.Getpid())
		if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", os.Getpid(), start)), 0o644); err == nil {
			_ = os.Rename(tmp, f)
		}
	}
	fmt.Printf("ready pid=%d\n", os.Getpid())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
