package clientsdk_test

import (
	"slices"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

func TestDrainBlockers(t *testing.T) {
	nodes := []clientsdk.Node{
		{ID: "a", Alive: true, Labels: map[string]string{"zone": "b"}, LambdaNames: []string{"f"}},
		{ID: "b", Alive: true, Labels: map[string]string{"zone": "a"}},
		{ID: "c", Alive: true, Labels: map[string]string{"zone": "b"}, Draining: true},
		{ID: "d", Alive: false, Labels: map[string]string{"zone": "b"}},
		{ID: "e", Alive: true, Labels: map[string]string{"zone": "c"}, MaxInstances: 1, Instances: 1},
	}
	app := func(name string, kind clientsdk.Kind, zone string, onA int) clientsdk.AppInfo {
		a := clientsdk.AppInfo{Spec: clientsdk.AppSpec{Name: name, Kind: kind}}
		if zone != "" {
			a.Spec.Constraints = map[string]string{"zone": zone}
		}
		for i := range onA {
			a.Summary.Instances = append(a.Summary.Instances, clientsdk.InstanceStatus{App: name, Instance: i, Node: "a", State: clientsdk.StateRunning})
		}
		return a
	}
	apps := []clientsdk.AppInfo{
		app("anywhere", clientsdk.KindDaemon, "", 2),         // b can take it
		app("zoneb", clientsdk.KindDaemon, "b", 1),           // c drains, d is dead: nowhere
		app("zonec", clientsdk.KindDaemon, "c", 1),           // e is full
		app("zonea-elsewhere", clientsdk.KindDaemon, "b", 0), // nothing on a
		app("f", clientsdk.KindLambda, "b", 0),               // hosted on a (its node entry), nowhere else
	}
	got := clientsdk.DrainBlockers("a", nodes, apps)
	want := []string{"daemon zoneb (1 here) (constraint zone=b)", "daemon zonec (1 here) (constraint zone=c)", "lambda f (constraint zone=b)"}
	if !slices.Equal(got, want) {
		t.Fatalf("blockers %q, want %q", got, want)
	}
	if b := clientsdk.DrainBlockers("b", nodes, apps); len(b) != 0 {
		t.Fatalf("draining b (it runs nothing) is blocked by %q", b)
	}
}
