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
	// Taken: an app of that name belongs to another service; the deploy
	// refuses to apply until it is renamed in the file or removed.
	Taken Action = "taken"
)

// Step is one app's part of a plan.
type Step struct {
	Action Action         `json:"action"`
	App    string         `json:"app"`
	Kind   clientsdk.Kind `json:"kind"`
	// Changes are the fields an update changes.
	Changes []clientsdk.SpecChange `json:"changes,omitempty"`
	// Stopped says the app is stopped (`dartup kill`); a deploy keeps it
	// so (an update is stored stopped, and runs at `dartup start`).
	Stopped bool `json:"stopped,omitempty"`
	// State and Message are the app's as `list` shows them (apps that run).
	State   clientsdk.AppState `json:"state,omitempty"`
	Message string             `json:"message,omitempty"`
	// Owner is the service the app belongs to now, when not the file's:
	// "" (pushed by hand, which a deploy adopts) or another (Taken).
	Owner string `json:"owner,omitempty"`
	// Adopts says an update takes over an app pushed by hand.
	Adopts bool `json:"adopts,omitempty"`
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
func (p Plan) Changes() bool { return p.Count(Unchanged)+p.Count(Taken) != len(p.Steps) }

// Failing returns the steps whose apps are in error now and that the plan
// leaves as they are: a deploy that changes nothing still fails for them.
func (p Plan) Failing() []Step {
	var out []Step
	for _, s := range p.Steps {
		if s.Action == Unchanged && s.State == clientsdk.AppError {
			out = append(out, s)
		}
	}
	return out
}

// MakePlan compares the specs a deploy file declares (their artifacts
// hashed here) with the apps a server holds: an app not there is created;
// one whose user-set fields differ (clientsdk.DiffSpecs) is updated (kept
// stopped if it was killed; adopted if it was pushed by hand); the rest is
// unchanged. An app of another service is Taken: never changed. With
// prune, apps of the service that the file no longer declares are removed;
// apps of other services and apps pushed by hand never are. Steps come in
// name order, removals last.
func MakePlan(service string, desired []clientsdk.AppSpec, current []clientsdk.AppInfo, prune bool) Plan {
	cur := map[string]clientsdk.AppInfo{}
	for _, c := range current {
		cur[c.Spec.Name] = c
	}
	p := Plan{Service: service}
	declared := map[string]bool{}
	for _, d := range desired {
		declared[d.Name] = true
		if c, ok := cur[d.Name]; ok {
			p.Steps = append(p.Steps, compare(service, d, c))
			continue
		}
		p.Steps = append(p.Steps, Step{Action: Create, App: d.Name, Kind: d.Kind, Spec: &d})
	}
	slices.SortFunc(p.Steps, func(a, b Step) int { return cmp.Compare(a.App, b.App) })
	if !prune {
		return p
	}
	var removes []Step
	for _, c := range current {
		if c.Spec.Service == service && !declared[c.Spec.Name] {
			removes = append(removes, Step{Action: Remove, App: c.Spec.Name, Kind: c.Spec.Kind, Stopped: c.Spec.Stopped,
				State: c.Summary.State})
		}
	}
	slices.SortFunc(removes, func(a, b Step) int { return cmp.Compare(a.App, b.App) })
	return Plan{Service: service, Steps: append(p.Steps, removes...)}
}

// compare makes the step of declared spec d whose app c runs.
func compare(service string, d clientsdk.AppSpec, c clientsdk.AppInfo) Step {
	step := Step{Action: Unchanged, App: d.Name, Kind: d.Kind, Stopped: c.Spec.Stopped, State: c.Summary.State,
		Message: c.Summary.Message, Owner: c.Spec.Service}
	if c.Spec.Service == service {
		step.Owner = ""
	}
	if c.Spec.Service != "" && c.Spec.Service != service {
		step.Action = Taken
		return step
	}
	if changes := clientsdk.DiffSpecs(c.Spec, d); len(changes) > 0 {
		d.Stopped = c.Spec.Stopped
		step.Action, step.Changes, step.Spec, step.Adopts = Update, changes, &d, c.Spec.Service == ""
	}
	return step
}
