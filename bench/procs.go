package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serveProc is a `dartup serve` child process on free loopback ports.
type serveProc struct {
	cmd     *exec.Cmd
	data    string
	natsURL string
	httpURL string
	logFile *os.File
	done    chan struct{}
	// ready is the time from just before fork to the ready file.
	ready time.Duration
}

type readyFile struct {
	PID     int    `json:"pid"`
	NATSURL string `json:"nats_url"`
	HTTPURL string `json:"http_url"`
}

// startServe runs `dartup serve` with its data in data, its log in logPath,
// and waits (polling every 200 µs) until it has written its ready file.
func startServe(ctx context.Context, bin, data, logPath string, extra ...string) (*serveProc, error) {
	// As root, apps run as users of their own: they pass through data's
	// folder to their work dirs beside it.
	if err := os.MkdirAll(filepath.Dir(data), 0o711); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--data", data, "--nats-addr", "127.0.0.1:0", "-p", "0"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s := &serveProc{cmd: cmd, data: data, logFile: lf, done: make(chan struct{})}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	rf := filepath.Join(data, "serve.json")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(rf); err == nil {
			var r readyFile
			if json.Unmarshal(b, &r) == nil && r.PID == cmd.Process.Pid {
				s.ready = time.Since(t0)
				s.natsURL, s.httpURL = r.NATSURL, r.HTTPURL
				return s, nil
			}
		}
		select {
		case <-s.done:
			lf.Close()
			return nil, fmt.Errorf("dartup serve exited before it was ready: %s\n%s", cmd.ProcessState, tail(logPath, 20))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("dartup serve was not ready after 60s\n%s", tail(logPath, 20))
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func (s *serveProc) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, waits up to 30 s, then kills the process group.
func (s *serveProc) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.logFile.Close()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// child is a helper process of the harness (responder, bare nats-server).
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startChild starts a program and returns its first stdout line (waiting up
// to 30 s); the rest of its output is discarded.
func startChild(bin string, env []string, args ...string) (*child, string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	first := make(chan string, 1)
	eof := make(chan struct{})
	go func() {
		br := bufio.NewReader(out)
		l, _ := br.ReadString('\n')
		first <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, br)
		close(eof)
	}()
	go func() { <-eof; _ = cmd.Wait(); close(c.done) }() // Wait only after the last read
	select {
	case l := <-first:
		if l == "" {
			c.stop()
			return nil, "", fmt.Errorf("%s printed nothing: %s", filepath.Base(bin), stderr.String())
		}
		return c, l, nil
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, "", fmt.Errorf("%s did not start in 30s", filepath.Base(bin))
	}
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// rssBytes returns a process's resident set size from /proc/PID/status.
func rssBytes(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// rssSamples samples a process's RSS n times, every gap, in MB.
func rssSamples(ctx context.Context, pid, n int, gap time.Duration) ([]float64, error) {
	var xs []float64
	for i := 0; i < n; i++ {
		r, err := rssBytes(pid)
		if err != nil {
			return nil, err
		}
		xs = append(xs, float64(r)/(1<<20))
		if err := sleepCtx(ctx, gap); err != nil {
			return nil, err
		}
	}
	return xs, nil
}

// pidStamp is what the benchmark daemon writes into its pid file.
type pidStamp struct {
	pid     int
	started time.Time
}

func readPidStamp(path string) (pidStamp, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return pidStamp{}, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return pidStamp{}, false
	}
	pid, e1 := strconv.Atoi(f[0])
	ns, e2 := strconv.ParseInt(f[1], 10, 64)
	if e1 != nil || e2 != nil {
		return pidStamp{}, false
	}
	return pidStamp{pid: pid, started: time.Unix(0, ns)}, true
}

// waitNewPid polls path every 100 µs until it names a pid other than old.
func waitNewPid(ctx context.Context, path string, old int, timeout time.Duration) (pidStamp, error) {
	deadline := time.Now().Add(timeout)
	for {
		if st, ok := readPidStamp(path); ok && st.pid != old && alive(st.pid) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return pidStamp{}, fmt.Errorf("no new process wrote %s within %s", filepath.Base(path), timeout)
		}
		if err := ctx.Err(); err != nil {
			return pidStamp{}, err
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// procsWithEnv returns the live pids whose environment holds kv ("K=V").
func procsWithEnv(kv string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !alive(pid) {
			continue
		}
		for _, x := range bytes.Split(env, []byte{0}) {
			if string(x) == kv {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// waitNoProcs waits until no live process has kv in its environment.
func waitNoProcs(ctx context.Context, kv string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for len(procsWithEnv(kv)) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("processes with %s still alive after %s", kv, timeout)
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// freeAddr returns a free loopback host:port.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }

// cpuTimes is a snapshot of the machine's CPU time (all cores) and one
// process's, in clock ticks.
type cpuTimes struct {
	busy, total uint64
	proc        uint64
}

func readCPU(pid int) cpuTimes {
	var c cpuTimes
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, x := range f[1:] {
			v, _ := strconv.ParseUint(x, 10, 64)
			c.total += v
			if i != 3 && i != 4 { // idle, iowait
				c.busy += v
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 12 {
				u, _ := strconv.ParseUint(f[11], 10, 64)
				s, _ := strconv.ParseUint(f[12], 10, 64)
				c.proc = u + s
			}
		}
	}
	return c
}

// cpuUse describes the CPU used between two snapshots: the machine's busy
// share (all cores) and the process's CPU time in ms.
func cpuUse(a, b cpuTimes) (busyPct float64, procMS float64) {
	if b.total > a.total {
		busyPct = 100 * float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	return busyPct, float64(b.proc-a.proc) * 10 // USER_HZ is 100 on Linux
}
