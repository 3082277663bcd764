package e2e

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// paddedCopy writes a copy of the executable bin with extra random bytes
// after it (it still runs): an artifact of a chosen size and digest.
func paddedCopy(t *testing.T, bin, path string, extra int64) string {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	pad := make([]byte, extra)
	_, _ = rand.Read(pad)
	if err := os.WriteFile(path, append(b, pad...), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// healthz returns the status code of GET /healthz.
func healthz(t *testing.T, s *server) int {
	t.Helper()
	resp, err := http.Get(s.httpURL + "/healthz")
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSmallAndFullDisk runs serve on a 64 MiB data disk (a tmpfs): it
// starts, with its store sized from the disk; a push over the store's limit
// and a push onto a disk that something else filled both fail with "disk
// full" and the free space; the store writes again by itself, its limit
// lowered to fit; a remove works on the full disk; once the space is back a
// push succeeds and the limit rises again; and serve starts again on a disk
// left half full.
func TestSmallAndFullDisk(t *testing.T) {
	mnt := testutil.TmpfsDir(t, 64<<20)
	data := filepath.Join(mnt, "data")
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	art := t.TempDir()
	s := startServe(t, data)
	var si clientsdk.ServerInfo
	if err := json.Unmarshal([]byte(s.dartup("info", "--json")), &si); err != nil {
		t.Fatal(err)
	}
	if si.Disk == nil || si.Disk.StoreMax <= 0 || si.Disk.StoreMax > 32<<20 {
		t.Fatalf("info's disk = %+v, want a store limit sized from the 64 MiB disk", si.Disk)
	}

	s.dartup("push", "--name", "diskfill", "--env", "WORKER_MODE=run", paddedCopy(t, worker, filepath.Join(art, "fill"), 8<<20))
	big := paddedCopy(t, worker, filepath.Join(art, "big"), 20<<20)
	out, code := s.exitCode("push", "--name", "diskbig", "--env", "WORKER_MODE=run", big)
	if code == 0 || !strings.Contains(out, "disk full on server") || !strings.Contains(out, "507") {
		t.Fatalf("push over the store's limit: exit %d, want a disk-full error:\n%s", code, out)
	}

	// Something else fills the disk.
	hog := filepath.Join(mnt, "hog")
	testutil.FillDisk(t, hog, 0)
	small := paddedCopy(t, worker, filepath.Join(art, "small"), 4<<20)
	start := time.Now()
	out, code = s.exitCode("push", "--name", "disksmall", "--env", "WORKER_MODE=run", small)
	if code == 0 || !strings.Contains(out, "disk full on server") || !strings.Contains(out, "free of") {
		t.Fatalf("push onto a full disk: exit %d, want a disk-full error with the free space:\n%s", code, out)
	}
	t.Logf("push onto a full disk failed in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	testutil.WaitFor(t, 20*time.Second, "the store to write again (/healthz 200)", func() bool { return healthz(t, s) == http.StatusOK })
	var lowered clientsdk.ServerInfo
	if err := json.Unmarshal([]byte(s.dartup("info", "--json")), &lowered); err != nil {
		t.Fatal(err)
	}
	if lowered.Disk.StoreMax >= si.Disk.StoreMax {
		t.Fatalf("store limit after the disk filled = %d, want it lowered below %d to fit the disk", lowered.Disk.StoreMax, si.Disk.StoreMax)
	}

	// A remove works on the full disk and stops the app.
	if out, code := s.exitCode("remove", "diskfill"); code != 0 {
		t.Fatalf("remove on a full disk: exit %d\n%s", code, out)
	}
	testutil.WaitFor(t, 10*time.Second, "diskfill's process to stop", func() bool { return len(procsOf("diskfill")) == 0 })

	// Space comes back: pushes work again, without a restart.
	if err := os.Remove(hog); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "a push to succeed once space is back", func() bool {
		out, code := s.exitCode("push", "--name", "disksmall", "--env", "WORKER_MODE=run", small)
		if code != 0 {
			t.Logf("push once space is back: exit %d: %s", code, strings.TrimSpace(out))
		}
		return code == 0
	})

	testutil.WaitFor(t, 20*time.Second, "the store limit to be raised again", func() bool {
		var now clientsdk.ServerInfo
		return json.Unmarshal([]byte(s.dartup("info", "--json")), &now) == nil && now.Disk != nil && now.Disk.StoreMax > lowered.Disk.StoreMax
	})

	// serve starts again on a disk left with 32 MiB free.
	s.stop()
	testutil.FillDisk(t, hog, 32<<20)
	s = startServe(t, data)
	testutil.WaitFor(t, 20*time.Second, "disksmall running after the restart", func() bool {
		return listJSON(t, s)["disksmall"].State == clientsdk.AppAlive
	})
}

// TestIdleConnectionsUnderLowFDLimit runs serve with 256 file descriptors
// and opens 1,000 idle HTTP connections to its gateway: the gateway takes a
// quarter of the descriptors at most, so NATS and JetStream keep working
// (a push succeeds meanwhile), nothing logs a write error or runs out of
// descriptors, and once the clients are gone the gateway serves again,
// without a restart.
func TestIdleConnectionsUnderLowFDLimit(t *testing.T) {
	wrap := []string{"/bin/sh", "-c", `ulimit -n 256 && exec "$0" "$@"`}
	s := startServeWrapped(t, wrap, nil, testutil.TempDir(t))
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", s.cmd.Process.Pid))
	if err != nil || !regexp.MustCompile(`Max open files +256 +256 `).Match(limits) {
		t.Fatalf("serve's descriptor limit is not 256 (%v):\n%s", err, limits)
	}
	host := strings.TrimPrefix(s.httpURL, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 1000 {
		c, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	if out, code := s.exitCode("push", "--name", "fdidle", "--runtime", "command", "--", "/bin/sleep", "600"); code != 0 {
		t.Fatalf("push while 1,000 idle connections are open: exit %d\n%s", code, out)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	testutil.WaitFor(t, 20*time.Second, "/healthz 200 once the idle clients are gone", func() bool { return healthz(t, s) == http.StatusOK })
	if log := s.log.String(); strings.Contains(log, "too many open files") || strings.Contains(log, "Critical write error") {
		t.Fatalf("serve ran out of descriptors or failed a write:\n%s", tailLines(log, 30))
	}
}
