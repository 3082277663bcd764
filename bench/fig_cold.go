package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/dartsass"
	"github.com/nats-io/nats.go"
)

// runtimeStub is a minimal AWS Lambda Runtime API for the cold baseline: it
// records when the bootstrap first asks for work, hands it one event, and
// records when the response arrives. Further `next` calls block.
type runtimeStub struct {
	srv  *http.Server
	addr string

	mu     sync.Mutex
	served bool
	nextAt chan time.Time
	respAt chan time.Time
}

func startRuntimeStub() (*runtimeStub, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &runtimeStub{addr: l.Addr().String()}
	s.reset()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		s.mu.Lock()
		first := !s.served
		s.served = true
		nextAt := s.nextAt
		s.mu.Unlock()
		if !first {
			<-r.Context().Done() // one event per process
			return
		}
		nextAt <- now
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", "bench-"+strconv.FormatInt(now.UnixNano(), 36))
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(now.Add(30*time.Second).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:local:000000000000:function:cold")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(invokePayload)))
		_, _ = w.Write(invokePayload)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		respAt := s.respAt
		s.mu.Unlock()
		select {
		case respAt <- time.Now():
		default:
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"OK"}`))
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})
	s.srv = &http.Server{Handler: mux}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *runtimeStub) reset() {
	s.mu.Lock()
	s.served, s.nextAt, s.respAt = false, make(chan time.Time, 1), make(chan time.Time, 1)
	s.mu.Unlock()
}

// coldByHand starts the bootstrap against the stub and returns the times from
// just before fork to its first `next` and to its response.
func (s *runtimeStub) coldByHand(ctx context.Context, bootstrap string) (toNext, toResp time.Duration, err error) {
	s.reset()
	s.mu.Lock()
	nextAt, respAt := s.nextAt, s.respAt
	s.mu.Unlock()
	cmd := exec.Command(bootstrap)
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+s.addr, "_HANDLER=bootstrap", "AWS_LAMBDA_FUNCTION_NAME=cold-by-hand",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128", "AWS_REGION=local", "LAMBDA_TASK_ROOT="+filepath.Dir(bootstrap))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	timeout := time.After(10 * time.Second)
	for _, x := range []struct {
		ch  chan time.Time
		out *time.Duration
	}{{nextAt, &toNext}, {respAt, &toResp}} {
		select {
		case t := <-x.ch:
			*x.out = t.Sub(t0)
		case <-timeout:
			return 0, 0, errors.New("the bootstrap did not reach the stub Runtime API in 10s")
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	return toNext, toResp, nil
}

func (s *runtimeStub) close() { _ = s.srv.Close() }

// figCold: cold invoke (figure 2): the Go bootstrap and the real Dart AOT program.
func (h *harness) figCold(ctx context.Context) []*Figure {
	goF := &Figure{ID: "cold", Num: 2, Title: "cold invoke (aws-lambda-go bootstrap)",
		Goal: "dartup first-request p50 − by-hand start-to-`next` p50 ≤ 5 ms"}
	dartF := &Figure{ID: "cold-dart", Num: 2, Title: "cold invoke, real Dart AOT program (sass, stdio)",
		Goal: "dartup p50 − direct run p50 ≤ 5 ms"}
	s, c, err := h.lambdaServe(ctx, "cold")
	if err != nil {
		goF.notMeasured(err.Error())
		dartF.notMeasured(err.Error())
		return []*Figure{goF, dartF}
	}
	defer s.stop()
	defer c.Close()
	h.coldGo(ctx, goF, s, c)
	h.coldDart(ctx, dartF, c)
	return []*Figure{goF, dartF}
}

func (h *harness) coldGo(ctx context.Context, f *Figure, s *serveProc, c *clientsdk.Client) {
	fail := func(err error) {
		f.notMeasured(err.Error())
		f.add(unmeasured("dartup first request, `lambda.cold` with --keep-warm 0", "dartup", err.Error()))
	}
	kw := clientsdk.Duration(0)
	if err := pushLambda(ctx, c, clientsdk.AppSpec{Name: "cold", Lambda: &clientsdk.LambdaSpec{KeepWarm: &kw}}, h.bins.bootstrap, invokePayload); err != nil {
		fail(err)
		return
	}
	stub, err := startRuntimeStub()
	if err != nil {
		fail(err)
		return
	}
	defer stub.close()
	nc, err := nats.Connect(s.natsURL, nats.Name("bench-cold"))
	if err != nil {
		fail(err)
		return
	}
	defer nc.Close()
	n := h.n(40, 5)
	var dartup, toNext, toResp []time.Duration
	for i := 0; i < n && ctx.Err() == nil; i++ {
		tn, tr, err := stub.coldByHand(ctx, h.bins.bootstrap)
		if err != nil {
			fail(err)
			return
		}
		toNext, toResp = append(toNext, tn), append(toResp, tr)
		// keep-warm 0: the previous worker is stopped after its request; wait until it is gone.
		if err := waitNoProcs(ctx, "AWS_LAMBDA_FUNCTION_NAME=cold", 5*time.Second); err != nil {
			fail(err)
			return
		}
		t0 := time.Now()
		if err := natsReq(nc, clientsdk.LambdaSubject("cold"), invokePayload); err != nil {
			fail(err)
			return
		}
		dartup = append(dartup, time.Since(t0))
	}
	coldNote := ""
	if cs, ok := coldStarts(ctx, c, "cold", uint64(n+1)); ok {
		coldNote = fmt.Sprintf("; dartup's own stats count %d cold starts for the %d requests (readiness check included)", cs, n+1)
	}
	base := f.add(latencyRow("bootstrap started by hand: fork → first GET …/next", "baseline", "ms", toNext))
	base.Short = "by hand to next"
	full := f.add(latencyRow("bootstrap started by hand: fork → response posted", "baseline", "ms", toResp))
	full.Note = "the same, through one event"
	r := f.add(latencyRow("dartup first request, `lambda.cold` with --keep-warm 0 (NATS request → reply)", "dartup", "ms", dartup))
	ratio(r, base)
	over := r.Median - base.Median
	r.Note = fmt.Sprintf("p50 overhead %s over the start to `next`, %s over the start to the response%s", fmtVal(over, "ms"), fmtVal(r.Median-full.Median, "ms"), coldNote)
	f.judge(over, 5, "ms")
	f.Note = "Each dartup sample is a request to a lambda whose previous worker has exited (keep-warm 0 stops it after every request; the harness waits until no worker is left), so every request spawns a worker, waits for its `next`, hands it the event and returns the reply. The baseline forks the same bootstrap with the same AWS environment against a minimal Runtime API in the harness and times it to its first `GET /2018-06-01/runtime/invocation/next` (and to its response). Samples alternate between the two."
}

func (h *harness) coldDart(ctx context.Context, f *Figure, c *clientsdk.Client) {
	fail := func(err error) {
		f.notMeasured(err.Error())
		f.add(unmeasured("dartup `lambda.sass` (stdio, --runtime aot)", "dartup", err.Error()))
	}
	pkg, err := dartsass.Find()
	dir := pkg
	if err == nil {
		dir, err = dartsass.Shared(pkg) // as root, the app's own user must run it
	}
	if err != nil {
		fail(err)
		return
	}
	dart, snap := filepath.Join(dir, "dart"), filepath.Join(dir, "sass.snapshot")
	if v, err := output(ctx, dir, dart, "--version"); err == nil {
		h.res.Versions.Dart = firstLine(v)
	}
	h.res.Versions.Sass = npmPackageVersion(filepath.Join(pkg, "..", "..", "package.json"))
	scss := []byte("$accent: #0a7;\n.card { border: 1px solid $accent; .title { color: darken($accent, 10%); } }\n")
	spec := clientsdk.AppSpec{Name: "sass", Runtime: clientsdk.RuntimeAOT, Interpreter: dart, Args: []string{"--stdin"},
		Lambda: &clientsdk.LambdaSpec{Protocol: clientsdk.ProtocolStdio}}
	if err := pushLambda(ctx, c, spec, snap, scss); err != nil {
		fail(err)
		return
	}
	// one unmeasured direct run, so that both sides start with the files in the page cache.
	warm := exec.CommandContext(ctx, dart, snap, "--stdin")
	warm.Stdin = bytes.NewReader(scss)
	if err := warm.Run(); err != nil {
		fail(fmt.Errorf("dart sass.snapshot --stdin: %w", err))
		return
	}
	n := h.n(20, 3)
	var direct, viaDartup []time.Duration
	for i := 0; i < n && ctx.Err() == nil; i++ {
		cmd := exec.CommandContext(ctx, dart, snap, "--stdin")
		cmd.Stdin = bytes.NewReader(scss)
		var out bytes.Buffer
		cmd.Stdout = &out
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			fail(fmt.Errorf("dart sass.snapshot --stdin: %w", err))
			return
		}
		direct = append(direct, time.Since(t0))
		if !strings.Contains(out.String(), ".card") {
			fail(errors.New("sass printed no CSS"))
			return
		}
		t0 = time.Now()
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		css, err := c.Invoke(ictx, "sass", scss)
		cancel()
		if err != nil {
			fail(err)
			return
		}
		viaDartup = append(viaDartup, time.Since(t0))
		if !bytes.Contains(css, []byte(".card")) {
			fail(fmt.Errorf("lambda.sass answered %q, not CSS", css))
			return
		}
	}
	base := f.add(latencyRow("`dart sass.snapshot --stdin` run directly (fork → exit)", "baseline", "ms", direct))
	base.Short = "direct"
	r := f.add(latencyRow("dartup `lambda.sass` (stdio, --runtime aot): request → CSS", "dartup", "ms", viaDartup))
	ratio(r, base)
	over := r.Median - base.Median
	r.Note = "p50 overhead " + fmtVal(over, "ms")
	f.judge(over, 5, "ms")
	f.Note = "sass.snapshot is an AOT-compiled Dart program from the npm package sass-embedded-linux-x64, run by the Dart AOT runtime it ships. A stdio lambda forks the program for every request (event on stdin, result from stdout), so each request is a cold start; the baseline runs the same command with the same SCSS on stdin. Samples alternate."
}

// coldStarts sums the cold starts dartup reports for a lambda, waiting up to
// 3 s for the count to reach want (stats are written asynchronously).
func coldStarts(ctx context.Context, c *clientsdk.Client, name string, want uint64) (uint64, bool) {
	deadline := time.Now().Add(3 * time.Second)
	var got uint64
	var seen bool
	for {
		if info, err := c.Describe(ctx, name); err == nil {
			got, seen = 0, false
			for _, in := range info.Summary.Instances {
				if in.Lambda != nil {
					got += in.Lambda.ColdStarts
					seen = true
				}
			}
		}
		if (seen && got >= want) || time.Now().After(deadline) || sleepCtx(ctx, 100*time.Millisecond) != nil {
			return got, seen
		}
	}
}
