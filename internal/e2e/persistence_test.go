package e2e

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

func listJSON(t *testing.T, s *server) map[string]clientsdk.AppSummary {
	t.Helper()
	var apps []clientsdk.AppSummary
	if err := json.Unmarshal([]byte(s.dartup("list", "--json")), &apps); err != nil {
		t.Fatal(err)
	}
	m := map[string]clientsdk.AppSummary{}
	for _, a := range apps {
		m[a.Name] = a
	}
	return m
}

// TestSurvivesKill9 pushes daemons, kills `dartup serve` with SIGKILL, starts
// a new one on the same data dir, and checks that every daemon that should run
// runs again exactly once, a killed one stays stopped, and nothing is lost.
func TestSurvivesKill9(t *testing.T) {
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	dir := testutil.TempDir(t)
	s := startServe(t, dir)
	s.dartup("push", "--name", "keep", "-j", "2", "--env", "WORKER_MODE=fork", worker)
	s.dartup("push", "--name", "parked", "--env", "WORKER_MODE=run", worker)
	s.dartup("kill", "parked")
	testutil.WaitFor(t, 15*time.Second, "keep running 2/2", func() bool {
		a := listJSON(t, s)["keep"]
		return a.State == clientsdk.AppAlive && a.Running == 2
	})
	// Each instance forked a child: 2 workers + 2 children.
	testutil.WaitFor(t, 5*time.Second, "4 processes of keep", func() bool { return len(procsOf("keep")) == 4 })
	before := procsOf("keep")
	infoBefore := s.dartup("info", "keep", "--json")

	s.kill9()
	// The workers die with serve (parent-death signal); their forked children
	// are left until the next serve kills their process groups.
	s2 := startServe(t, dir)
	testutil.WaitFor(t, 15*time.Second, "keep running 2/2 again after kill -9", func() bool {
		a := listJSON(t, s2)["keep"]
		if a.State != clientsdk.AppAlive || a.Running != 2 {
			return false
		}
		for _, in := range a.Instances {
			if slices.Contains(before, in.PID) {
				return false
			}
		}
		return true
	})
	testutil.WaitFor(t, 5*time.Second, "exactly the new 2 workers and their 2 children", func() bool {
		now := procsOf("keep")
		for _, p := range now {
			if slices.Contains(before, p) {
				return false
			}
		}
		return len(now) == 4
	})
	apps := listJSON(t, s2)
	if p := apps["parked"]; p.State != clientsdk.AppDead || p.Message != "stopped" {
		t.Fatalf("killed app after restart: %+v", p)
	}
	if n := len(procsOf("parked")); n != 0 {
		t.Fatalf("killed app has %d processes after restart", n)
	}
	var a, b clientsdk.AppInfo
	_ = json.Unmarshal([]byte(infoBefore), &a)
	_ = json.Unmarshal([]byte(s2.dartup("info", "keep", "--json")), &b)
	if a.Spec.Artifact == nil || b.Spec.Artifact == nil || a.Spec.Artifact.SHA256 != b.Spec.Artifact.SHA256 || a.Spec.Revision != b.Spec.Revision {
		t.Fatalf("spec changed across kill -9:\nbefore %+v\nafter  %+v", a.Spec, b.Spec)
	}
	if out := s2.dartup("list"); !strings.Contains(out, " • keep - alive - 2/2 running") {
		t.Fatalf("list output: %q", out)
	}
}

// truncateBlock cuts a JetStream message block file after its first keep
// records (each starts with its length, little-endian, high bit a flag),
// as a crash or a damaged disk would leave it.
func truncateBlock(t *testing.T, path string, keep int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := 0; i < keep; i++ {
		if off+4 > len(b) {
			t.Fatalf("%s has fewer than %d records", path, keep)
		}
		off += int(binary.LittleEndian.Uint32(b[off:]) &^ (1 << 31))
	}
	if off >= len(b) {
		t.Fatalf("%s has no record after the first %d", path, keep)
	}
	if err := os.Truncate(path, int64(off)); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedAppsBucketIsRepaired truncates the apps bucket's file while
// serve is stopped, losing the last push and a removal: the next serve says
// so in its log and in `info`, puts the lost app back and removes the
// revived one again, instead of starting a removed app and forgetting a
// pushed one.
func TestDamagedAppsBucketIsRepaired(t *testing.T) {
	dir := testutil.TempDir(t)
	s := startServe(t, dir)
	for _, app := range []string{"dmgkeep", "dmgremoved", "dmglast"} {
		s.dartup("push", "--name", app, "--runtime", "command", "--", "/bin/sleep", "600")
	}
	s.dartup("remove", "dmgremoved")
	s.stop()
	// Records: 3 pushes and the removal's marker; keep the first two pushes.
	truncateBlock(t, filepath.Join(dir, "jetstream", "$G", "streams", "KV_"+clientsdk.AppsBucket, "msgs", "1.blk"), 2)

	s = startServe(t, dir)
	testutil.WaitFor(t, 20*time.Second, "dmgkeep and dmglast running", func() bool {
		apps := listJSON(t, s)
		return apps["dmgkeep"].State == clientsdk.AppAlive && apps["dmglast"].State == clientsdk.AppAlive
	})
	if _, ok := listJSON(t, s)["dmgremoved"]; ok || len(procsOf("dmgremoved")) > 0 {
		t.Fatalf("the removed app came back: listed %v, processes %v", ok, procsOf("dmgremoved"))
	}
	var si clientsdk.ServerInfo
	if err := json.Unmarshal([]byte(s.dartup("info", "--json")), &si); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(si.StoreDamage, "\n")
	if len(si.StoreDamage) != 2 || !strings.Contains(all, "dmgremoved was removed") || !strings.Contains(all, "dmglast (revision 3) is missing") {
		t.Fatalf("info's store damage = %q, want the revived dmgremoved and the lost dmglast", si.StoreDamage)
	}
	if !strings.Contains(s.log.String(), "the apps bucket lost desired state") {
		t.Error("serve's log does not say that the apps bucket lost desired state")
	}
}
