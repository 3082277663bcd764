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
	stored := func(s clientsdk.AppSpec) clientsdk.AppSpec {
		s = s.WithDefaults()
		s.Version, s.Revision, s.PushedBy = 3, 40, "someone@host"
		return s
	}
	desired := []clientsdk.AppSpec{spec("b", "shop", 2), spec("a", "shop", 1), spec("c", "shop", 1)}
	current := []clientsdk.AppSpec{
		stored(spec("a", "shop", 1)),   // unchanged
		stored(spec("b", "shop", 1)),   // instances change
		stored(spec("old", "shop", 1)), // gone from the file
		stored(spec("other", "blog", 1)),
		stored(spec("hand", "", 1)),
	}
	for _, tc := range []struct {
		name  string
		prune bool
		want  []string
	}{
		{"without prune", false, []string{"a unchanged", "b update [instances: 1 → 2]", "c create"}},
		{"prune removes only the service's own", true, []string{"a unchanged", "b update [instances: 1 → 2]", "c create", "old remove"}},
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
	}
	same := MakePlan("shop", desired[1:2], current[:1], true)
	if same.Changes() || same.Count(Unchanged) != 1 {
		t.Errorf("same specs: %+v", same)
	}
}
