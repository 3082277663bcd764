package runner

import (
	"strings"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

func TestRolloutGate(t *testing.T) {
	const rev = 9
	spec := func(n, parallel int) clientsdk.AppSpec {
		return daemon("web", n, func(s *clientsdk.AppSpec) { s.Revision, s.Parallel = rev, parallel })
	}
	st := func(state clientsdk.InstanceState, r uint64, ready bool) clientsdk.InstanceStatus {
		return clientsdk.InstanceStatus{State: state, SpecRevision: r, Ready: ready}
	}
	oldReady := st(clientsdk.StateRunning, 7, true)
	newReady := st(clientsdk.StateRunning, rev, true)
	newProbing := st(clientsdk.StateRunning, rev, false)
	failed := oldReady
	failed.FailedRevision, failed.LastError = rev, "version 3 did not get ready"
	for _, c := range []struct {
		name     string
		spec     clientsdk.AppSpec
		index    int
		statuses map[int]clientsdk.InstanceStatus
		open     bool
		why      string
	}{
		{"the first instance goes first", spec(4, 1), 0, map[int]clientsdk.InstanceStatus{0: oldReady, 1: oldReady}, true, ""},
		{"the second waits for the first", spec(4, 1), 1, map[int]clientsdk.InstanceStatus{0: oldReady, 1: oldReady}, false, "waiting for 1"},
		{"the second waits while the first is not ready", spec(4, 1), 1, map[int]clientsdk.InstanceStatus{0: newProbing, 1: oldReady}, false, "waiting for 1"},
		{"the second goes once the first is ready at the revision", spec(4, 1), 1, map[int]clientsdk.InstanceStatus{0: newReady, 1: oldReady}, true, ""},
		{"parallel 2: the second goes with the first", spec(4, 2), 1, map[int]clientsdk.InstanceStatus{0: oldReady, 1: oldReady}, true, ""},
		{"parallel 2: the third waits for one of them", spec(4, 2), 2, map[int]clientsdk.InstanceStatus{0: oldReady, 1: newProbing}, false, "waiting for 2"},
		{"parallel 2: the third goes when one is done", spec(4, 2), 2, map[int]clientsdk.InstanceStatus{0: newReady, 1: newProbing}, true, ""},
		{"instances that do not run hold nobody up", spec(4, 1), 3, map[int]clientsdk.InstanceStatus{
			0: st(clientsdk.StateErrored, 7, false), 1: st(clientsdk.StateBackoff, 7, false), 2: st(clientsdk.StateStopped, 7, false)}, true, ""},
		{"an instance without a status holds nobody up", spec(4, 1), 2, map[int]clientsdk.InstanceStatus{1: newReady}, true, ""},
		{"a failure anywhere stops the rollout", spec(4, 4), 1, map[int]clientsdk.InstanceStatus{0: oldReady, 3: failed}, false, "failed on instance 3"},
		{"a failure of an older revision does not", spec(4, 1), 1, map[int]clientsdk.InstanceStatus{0: func() clientsdk.InstanceStatus {
			s := newReady
			s.FailedRevision = 8
			return s
		}()}, true, ""},
		{"a new revision that crashes after taking over stops the rollout", spec(4, 1), 1, map[int]clientsdk.InstanceStatus{0: func() clientsdk.InstanceStatus {
			s := st(clientsdk.StateBackoff, rev, false)
			s.QuickExits = 1
			return s
		}(), 1: oldReady}, false, "crashes on instance 0"},
		{"statuses of scaled-away instances do not count", spec(2, 1), 1, map[int]clientsdk.InstanceStatus{0: newReady, 5: failed}, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			open, why := rolloutGate(c.spec, c.index, c.statuses)
			if open != c.open || !strings.Contains(why, c.why) {
				t.Fatalf("got %v %q, want %v %q", open, why, c.open, c.why)
			}
		})
	}
}
