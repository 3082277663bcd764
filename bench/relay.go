package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// relay is the protocol floor of a NATS-invoked Runtime API lambda: the least
// code that takes a request on a NATS subject, hands it to a waiting
// bootstrap's `GET …/next`, and answers with the body of its `POST
// …/response`. No queue bounds, no timeouts, no stats: what is left is the
// cost of the two protocols. It runs in the harness with bootstraps forked by
// hand.
type relay struct {
	srv    *http.Server
	addr   string
	sub    *nats.Subscription
	events chan *relayCall
	seq    atomic.Uint64

	mu      sync.Mutex
	pending map[string]*relayCall
	procs   []*exec.Cmd
}

type relayCall struct {
	data  []byte
	reply chan []byte
}

func startRelay(nc *nats.Conn, subject string) (*relay, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{addr: l.Addr().String(), events: make(chan *relayCall), pending: map[string]*relayCall{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, req *http.Request) {
		var c *relayCall
		select {
		case c = <-r.events:
		case <-req.Context().Done():
			return
		}
		id := strconv.FormatUint(r.seq.Add(1), 10)
		r.mu.Lock()
		r.pending[id] = c
		r.mu.Unlock()
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(30*time.Second).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:local:000000000000:function:relay")
		h.Set("Content-Length", strconv.Itoa(len(c.data)))
		_, _ = w.Write(c.data)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		c := r.pending[req.PathValue("id")]
		delete(r.pending, req.PathValue("id"))
		r.mu.Unlock()
		if c == nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"OK"}`))
		c.reply <- body
	})
	r.srv = &http.Server{Handler: mux}
	go func() { _ = r.srv.Serve(l) }()
	r.sub, err = nc.Subscribe(subject, func(m *nats.Msg) {
		go func() {
			c := &relayCall{data: m.Data, reply: make(chan []byte, 1)}
			select {
			case r.events <- c:
			case <-time.After(10 * time.Second):
				return
			}
			select {
			case body := <-c.reply:
				_ = m.Respond(body)
			case <-time.After(10 * time.Second):
			}
		}()
	})
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// spawn starts n bootstraps against the relay.
func (r *relay) spawn(bootstrap string, n int) error {
	for i := 0; i < n; i++ {
		cmd := exec.Command(bootstrap)
		cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+r.addr, "_HANDLER=bootstrap", "AWS_LAMBDA_FUNCTION_NAME=relay",
			"AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128", "AWS_REGION=local", "LAMBDA_TASK_ROOT="+filepath.Dir(bootstrap))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start bootstrap: %w", err)
		}
		r.mu.Lock()
		r.procs = append(r.procs, cmd)
		r.mu.Unlock()
	}
	return nil
}

func (r *relay) close() {
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
	r.mu.Lock()
	procs := r.procs
	r.mu.Unlock()
	for _, p := range procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
	_ = r.srv.Close()
}

// relayChildArg, as the harness's first argument, makes it the relay alone
// (runRelayChild): figure 3 measures the relay's CPU apart from the
// callers'.
const relayChildArg = "-relay-child"

// runRelayChild is the harness run as `bench -relay-child NATS_URL
// BOOTSTRAP N`: a relay on bench.relay with N bootstraps; it prints
// "ready" once they wait for events, and runs until killed.
func runRelayChild(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: bench %s NATS_URL BOOTSTRAP N", relayChildArg)
	}
	n, err := strconv.Atoi(args[2])
	if err != nil || n < 1 || n > 64 {
		return fmt.Errorf("bench %s: N must be 1 to 64, not %q", relayChildArg, args[2])
	}
	nc, err := nats.Connect(args[0], nats.Name("bench-relay"))
	if err != nil {
		return err
	}
	r, err := startRelay(nc, "bench.relay")
	if err != nil {
		return err
	}
	defer r.close()
	if err := r.spawn(args[1], n); err != nil {
		return err
	}
	// Ready once every bootstrap answered one request.
	for range 2 * n {
		if _, err := nc.Request("bench.relay", []byte(`{}`), 30*time.Second); err != nil {
			return fmt.Errorf("bench %s: the relay does not answer: %w", relayChildArg, err)
		}
	}
	fmt.Println("ready")
	select {}
}
