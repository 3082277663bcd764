package deploy

import (
	"fmt"
	"slices"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

func TestMakePlan(t *testing.T) {
	spec := func(name, service string, instances int) clientsdk.AppSpec {
		return clientsdk.AppSpec{Name: name, Service: service, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"}, Instances: instances}
	}
	stored := func(s clientsdk.AppSpec, edit ...func(*clientsdk.AppInfo)) clientsdk.AppInfo {
		s = s.WithDefaults()
		s.Version, s.Revision, s.PushedBy = 3, 40, "someone@host"
		ai := clientsdk.AppInfo{Spec: s, Summary: clientsdk.AppSummary{Name: s.Name, State: clientsdk.AppAlive}}
		for _, e := range edit {
			e(&ai)
		}
		return ai
	}
	desired := []clientsdk.AppSpec{spec("b", "shop", 2), spec("a", "shop", 1), spec("c", "shop", 1),
		spec("hand", "shop", 1), spec("post", "shop", 1), spec("killed", "shop", 2), spec("crash", "shop", 1)}
	current := []clientsdk.AppInfo{
		stored(spec("a", "shop", 1)),   // unchanged
		stored(spec("b", "shop", 1)),   // instances change
		stored(spec("old", "shop", 1)), // gone from the file
		stored(spec("other", "blog", 1)),
		stored(spec("hand", "", 1)),     // pushed by hand: adopted
		stored(spec("post", "blog", 1)), // another service's: taken
		stored(spec("killed", "shop", 1), func(ai *clientsdk.AppInfo) { ai.Spec.Stopped = true }),
		stored(spec("crash", "shop", 1), func(ai *clientsdk.AppInfo) { ai.Summary.State = clientsdk.AppError }),
	}
	for _, tc := range []struct {
		name  string
		prune bool
		want  []string
	}{
		{"without prune", false, []string{"a unchanged", "b update [instances: 1 → 2]", "c create", "crash unchanged",
			"hand update [+service=\"shop\"]", "killed update [instances: 1 → 2]", "post taken"}},
		{"prune removes only the service's own", true, []string{"a unchanged", "b update [instances: 1 → 2]", "c create", "crash unchanged",
			"hand update [+service=\"shop\"]", "killed update [instances: 1 → 2]", "post taken", "old remove"}},
	} {
		p := MakePlan("shop", desired, current, tc.prune)
		var got []string
		for _, s := range p.Steps {
			line := s.App + " " + string(s.Action)
			if len(s.Changes) > 0 {
				line += fmt.Sprint(" ", s.Changes)
			}
			got = append(got, line)
			if (s.Action == Create || s.Action == Update) != (s.Spec != nil) {
				t.Errorf("%s: %s step with spec %v", tc.name, s.Action, s.Spec)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
		for _, s := range p.Steps {
			switch s.App {
			case "killed":
				if !s.Stopped || !s.Spec.Stopped {
					t.Errorf("the update of a killed app would start it: %+v", s)
				}
			case "hand":
				if !s.Adopts {
					t.Errorf("hand: not marked adopted")
				}
			case "post":
				if s.Owner != "blog" {
					t.Errorf("post: owner %q", s.Owner)
				}
			}
		}
		if f := p.Failing(); len(f) != 1 || f[0].App != "crash" {
			t.Errorf("failing: %+v", f)
		}
	}
	same := MakePlan("shop", desired[1:2], current[:1], true)
	if same.Changes() || same.Count(Unchanged) != 1 {
		t.Errorf("same specs: %+v", same)
	}
}
