// Command web is a test HTTP server for dartup's gateway and rollouts. It
// listens on $PORT (all interfaces) and answers:
//
//	GET /          "version=V pid=P instance=I" (V from WEB_VERSION)
//	GET /healthz   200, or 500 once /sick was called
//	POST /sick     makes /healthz fail from now on
//	GET /slow?ms=N answers after N ms
//	GET /stream?mb=N streams N MiB of zeros
//	GET /ws        a WebSocket that echoes what it gets
//	GET /headers   the request's headers as a JSON object of lists
//
// WEB_READY_DELAY (a Go duration) delays listening; WEB_NEVER_READY=1
// never listens; WEB_EXIT_AFTER (a Go duration) exits 3 that long after
// the start. On SIGTERM it exits at once, without finishing requests in
// flight: the gateway must have drained it first.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/websocket"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		os.Exit(0)
	}()
	if d, err := time.ParseDuration(os.Getenv("WEB_EXIT_AFTER")); err == nil {
		time.AfterFunc(d, func() { os.Exit(3) })
	}
	if os.Getenv("WEB_NEVER_READY") == "1" {
		fmt.Println("never ready")
		select {}
	}
	if d, err := time.ParseDuration(os.Getenv("WEB_READY_DELAY")); err == nil {
		time.Sleep(d)
	}
	var sick atomic.Bool
	who := fmt.Sprintf("version=%s pid=%d instance=%s", os.Getenv("WEB_VERSION"), os.Getpid(), os.Getenv("DARTUP_INSTANCE"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s path=%s xff=%s host=%s\n", who, r.URL.Path, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"))
	})
	// Files of public/ in the working directory (a pushed folder's).
	mux.Handle("GET /public/", http.StripPrefix("/public/", http.FileServer(http.Dir("public"))))
	mux.HandleFunc("GET /shop/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s path=%s\n", who, r.URL.Path)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if sick.Load() {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /sick", func(w http.ResponseWriter, r *http.Request) {
		sick.Store(true)
		fmt.Fprintln(w, who, "is sick now")
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintln(w, who)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
		w.Header().Set("Content-Type", "application/octet-stream")
		buf := make([]byte, 1<<20)
		for range mb {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	})
	mux.Handle("GET /ws", websocket.Handler(func(c *websocket.Conn) { _, _ = io.Copy(c, c) }))
	srv := &http.Server{Addr: ":" + os.Getenv("PORT"), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Println("listening", who, "port", os.Getenv("PORT"))
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
