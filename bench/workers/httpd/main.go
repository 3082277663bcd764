// Command httpd is the app of the gateway benchmark: a Go HTTP server on
// $PORT that answers every request with a short body.
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; os.Exit(0) }()
	body := []byte("hello from instance " + os.Getenv("DARTUP_INSTANCE") + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
