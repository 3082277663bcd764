package deploy

import (
	"cmp"
	"slices"

	"github.com/dartup/dartup/clientsdk"
)

// Action is what a deploy does to one app.
type Action string

// Actions of a plan.
const (
	Create    Action = "create"
	Update    Action = "update"
	Unchanged Action = "unchanged"
	Remove    Action = "remove"
)

// Step is one app's part of a plan.
type Step struct {
	Action Action         `json:"action"`
	App    string         `json:"app"`
	Kind   clientsdk.Kind `json:"kind"`
	// Changes are the fields an update changes.
	Changes []clientsdk.SpecChange `json:"changes,omitempty"`
	// Stopped says the app is stopped (`dartup kill`); a deploy keeps it so.
	Stopped bool `json:"stopped,omitempty"`
	// Spec is the spec to push (create and update).
	Spec *clientsdk.AppSpec `json:"-"`
}

// Plan is what a deploy does, app by app.
type Plan struct {
	Service string `json:"service"`
	Steps   []Step `json:"steps"`
}

// Count returns how many steps take action a.
func (p Plan) Count(a Action) int {
	n := 0
	for _, s := range p.Steps {
		if s.Action == a {
			n++
		}
	}
	return n
}

// Changes reports whether the plan changes anything.
func (p Plan) Changes() bool { return p.Count(Unchanged) != len(p.Steps) }

// MakePlan compares the specs a deploy file declares (their artifacts
// hashed here) with the specs a server holds: an app not there is created;
// one whose user-set fields differ (clientsdk.DiffSpecs) is updated; the
// rest is unchanged. With prune, apps of the service that the file no
// longer declares are removed; apps of other services and apps pushed by
// hand never are. Steps come in name order, removals last.
func MakePlan(service string, desired, current []clientsdk.AppSpec, prune bool) Plan {
	cur := map[string]clientsdk.AppSpec{}
	for _, s := range current {
		cur[s.Name] = s
	}
	p := Plan{Service: service}
	declared := map[string]bool{}
	for _, d := range desired {
		declared[d.Name] = true
		d := d
		c, ok := cur[d.Name]
		switch {
		case !ok:
			p.Steps = append(p.Steps, Step{Action: Create, App: d.Name, Kind: d.Kind, Spec: &d})
		default:
			changes := clientsdk.DiffSpecs(c, d)
			step := Step{Action: Unchanged, App: d.Name, Kind: d.Kind, Stopped: c.Stopped}
			if len(changes) > 0 {
				step.Action, step.Changes, step.Spec = Update, changes, &d
			}
			p.Steps = append(p.Steps, step)
		}
	}
	slices.SortFunc(p.Steps, func(a, b Step) int { return cmp.Compare(a.App, b.App) })
	if !prune {
		return p
	}
	var removes []Step
	for _, c := range current {
		if c.Service == service && !declared[c.Name] {
			removes = append(removes, Step{Action: Remove, App: c.Name, Kind: c.Kind, Stopped: c.Stopped})
		}
	}
	slices.SortFunc(removes, func(a, b Step) int { return cmp.Compare(a.App, b.App) })
	p.Steps = append(p.Steps, removes...)
	return p
}
