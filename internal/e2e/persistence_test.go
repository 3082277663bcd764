package e2e

import (
	"encoding/json"
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
