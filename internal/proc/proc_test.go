package proc_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/proc"
	"github.com/dartup/dartup/internal/testutil"
)

// A program still open for writing (as when the artifact cache has just
// written it and a child forked meanwhile holds the descriptor) fails to
// exec with ETXTBSY for a moment; Start waits it out.
func TestStartRetriesTextFileBusy(t *testing.T) {
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true:", err)
	}
	path := filepath.Join(t.TempDir(), "prog")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bin); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.Close()
	}()
	p, err := proc.Start(proc.Spec{Path: path})
	if err != nil {
		t.Fatalf("start while the program was briefly open for writing: %v", err)
	}
	<-p.Done()
	if ex := p.Exit(); ex.Code != 0 {
		t.Fatalf("exit %+v", ex)
	}
}

// Output lines are delivered whole up to MaxLineBytes, whatever the read
// buffer's size, and longer ones are split at MaxLineBytes.
func TestLongLines(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	sizes := []int{10, 5000, 70000, 3}
	script := ""
	for _, n := range sizes {
		script += fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; echo; ", n)
	}
	p, err := proc.Start(proc.Spec{Path: "/bin/sh", Args: []string{"-c", script}, OnStdout: func(l []byte) {
		mu.Lock()
		lines = append(lines, string(l))
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	p.WaitOutput(5 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	want := []int{10, 5000, proc.MaxLineBytes, 70000 - proc.MaxLineBytes, 3}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d", len(lines), len(want))
	}
	for i, n := range want {
		if len(lines[i]) != n || strings.Trim(lines[i], "x") != "" {
			t.Fatalf("line %d has %d bytes, want %d x's", i, len(lines[i]), n)
		}
	}
}

func TestProcStat(t *testing.T) {
	if proc.StartTime(os.Getpid()) == 0 {
		t.Fatal("no start time for this process")
	}
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	if ticks, ok := proc.CPUTicks(os.Getpid()); !ok || ticks == 0 {
		t.Fatalf("CPU ticks of a process that just spun: %d %v", ticks, ok)
	}
	ticks, rss, ok := proc.Usage(os.Getpid())
	statm, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := strconv.ParseUint(strings.Fields(string(statm))[1], 10, 64)
	if want := pages * uint64(os.Getpagesize()); !ok || ticks == 0 || rss < want*3/4 || rss > want*5/4 {
		t.Fatalf("usage: %d ticks, %d bytes resident (statm says %d), %v", ticks, rss, want, ok)
	}
	if _, _, ok := proc.Usage(1 << 30); ok {
		t.Fatal("a process that does not exist has usage")
	}
	if _, ok := proc.CPUTicks(1 << 30); ok || proc.StartTime(1<<30) != 0 {
		t.Fatal("a process that does not exist has stats")
	}
}

// Every process starts with no_new_privs: set-user-ID programs give it nothing.
func TestNoNewPrivs(t *testing.T) {
	if err := proc.NoNewPrivs(); err != nil {
		t.Fatalf("no_new_privs: %v", err)
	}
	out := runOutput(t, proc.Spec{Path: "/bin/grep", Args: []string{"NoNewPrivs", "/proc/self/status"}})
	if !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Fatalf("the child's status says %q", out)
	}
}

// With a Credential the process runs as that user and group, with no
// supplementary groups (only root can do it).
func TestCredential(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	out := runOutput(t, proc.Spec{Path: "/usr/bin/id", Credential: &proc.Credential{UID: 59998, GID: 59997}})
	if strings.TrimSpace(out) != "uid=59998 gid=59997 groups=59997" {
		t.Fatalf("id printed %q", out)
	}
}

// runOutput starts s and returns its stdout once it has exited.
func runOutput(t *testing.T, s proc.Spec) string {
	t.Helper()
	var mu sync.Mutex
	var out strings.Builder
	s.OnStdout = func(l []byte) { mu.Lock(); out.Write(l); out.WriteByte('\n'); mu.Unlock() }
	p, err := proc.Start(s)
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	p.WaitOutput(time.Second)
	mu.Lock()
	defer mu.Unlock()
	return out.String()
}

// A worker's child that calls setsid leaves the worker's process group and
// outlives a group kill; re-parented to the runner (the subreaper), it is
// swept: killed and reaped.
func TestOrphansAreSwept(t *testing.T) {
	if err := proc.EnableOrphanReaper(); err != nil {
		t.Skipf("no PR_SET_CHILD_SUBREAPER here: %v", err)
	}
	arg := fmt.Sprintf("%d.%03d", 1000+os.Getpid()%1000, time.Now().Nanosecond()/1e6)
	p, err := proc.Start(proc.Spec{Path: "/bin/sh", Args: []string{"-c", "setsid sleep " + arg + " & exec sleep 1000"},
		Env: []string{"PATH=/usr/bin:/bin", "DARTUP_APP=orphantest"}})
	if err != nil {
		t.Fatal(err)
	}
	var child int
	testutil.WaitFor(t, 5*time.Second, "the setsid child to start", func() bool { child = pidWithArg(arg); return child > 0 })
	p.Stop(time.Second)
	testutil.WaitFor(t, 10*time.Second, "the setsid child to be swept and reaped (no zombie)", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", child))
		return errors.Is(err, os.ErrNotExist)
	})
}

// pidWithArg returns the pid of a live "sleep ARG" process.
func pidWithArg(arg string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue
		}
		if bytes.Equal(cmd, []byte("sleep\x00"+arg+"\x00")) {
			return pid
		}
	}
	return 0
}

// Waiting for children holds no OS thread each: 100 sleeping children add
// far fewer than 100 threads.
func TestWaitingCostsNoThreadPerChild(t *testing.T) {
	before := threads(t)
	var ps []*proc.Process
	for range 100 {
		p, err := proc.Start(proc.Spec{Path: "/bin/sleep", Args: []string{"1000"}})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	time.Sleep(200 * time.Millisecond)
	during := threads(t)
	for _, p := range ps {
		p.Kill()
	}
	t.Logf("threads: %d before, %d with 100 children waited for", before, during)
	if during-before > 20 {
		t.Fatalf("%d threads for 100 children (from %d)", during, before)
	}
}

func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatal("no Threads line")
	return 0
}

// An idle process costs no goroutine: its output pipes and its exit are
// waited for by the shared watchers, and nothing reads or buffers until it
// writes.
func TestIdleProcessesCostNoGoroutine(t *testing.T) {
	warm := runOutput(t, proc.Spec{Path: "/bin/echo", Args: []string{"warm"}}) // the watchers start with the first process
	if warm != "warm\n" {
		t.Fatalf("echo printed %q", warm)
	}
	before := runtime.NumGoroutine()
	var ps []*proc.Process
	for range 50 {
		p, err := proc.Start(proc.Spec{Path: "/bin/sleep", Args: []string{"1000"},
			OnStdout: func([]byte) {}, OnStderr: func([]byte) {}})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	during := runtime.NumGoroutine()
	for _, p := range ps {
		if ex := p.Kill(); ex.Signal != "SIGKILL" {
			t.Fatalf("killed process exit %+v", ex)
		}
		p.WaitOutput(5 * time.Second)
	}
	t.Logf("goroutines: %d before, %d with 50 idle processes", before, during)
	if during-before > 5 {
		t.Fatalf("%d goroutines for 50 idle processes (from %d)", during-before, before)
	}
}

// Many processes writing at once: each stream gets all its own lines, in
// order, and nothing of another's.
func TestManyStreamsAtOnce(t *testing.T) {
	const procs, lines = 20, 3000
	type got struct {
		mu       sync.Mutex
		out, err []string
	}
	res := make([]*got, procs)
	var ps []*proc.Process
	for i := range procs {
		g := &got{}
		res[i] = g
		script := fmt.Sprintf("seq -f 'p%d out %%g' 1 %d; seq -f 'p%d err %%g' 1 %d >&2", i, lines, i, lines/3)
		p, err := proc.Start(proc.Spec{Path: "/bin/sh", Args: []string{"-c", script}, Env: []string{"PATH=/usr/bin:/bin"},
			OnStdout: func(l []byte) { g.mu.Lock(); g.out = append(g.out, string(l)); g.mu.Unlock() },
			OnStderr: func(l []byte) { g.mu.Lock(); g.err = append(g.err, string(l)); g.mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for i, p := range ps {
		<-p.Done()
		p.WaitOutput(10 * time.Second)
		g := res[i]
		g.mu.Lock()
		check := func(stream string, ls []string, n int) {
			if len(ls) != n {
				t.Fatalf("p%d %s: %d lines, want %d", i, stream, len(ls), n)
			}
			for j, l := range ls {
				if want := fmt.Sprintf("p%d %s %d", i, stream, j+1); l != want {
					t.Fatalf("p%d %s line %d: %q, want %q", i, stream, j, l, want)
				}
			}
		}
		check("out", g.out, lines)
		check("err", g.err, lines/3)
		g.mu.Unlock()
	}
}

// A child that outlives the process keeps its output open: its lines still
// arrive, and WaitOutput waits for them.
func TestOutputOfALeftoverChild(t *testing.T) {
	var mu sync.Mutex
	var got []string
	p, err := proc.Start(proc.Spec{Path: "/bin/sh", Args: []string{"-c", "(sleep 0.3; echo late) & echo early"},
		Env:      []string{"PATH=/usr/bin:/bin"},
		OnStdout: func(l []byte) { mu.Lock(); got = append(got, string(l)); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	p.WaitOutput(10 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "early,late" {
		t.Fatalf("lines %q, want early and late", got)
	}
}
