package runner

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// daemon returns a defaulted daemon spec with n instances.
func daemon(name string, n int, mod ...func(*clientsdk.AppSpec)) clientsdk.AppSpec {
	s := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: []string{"x"}, Instances: n, Revision: 7}
	for _, m := range mod {
		m(&s)
	}
	return s.WithDefaults()
}

func lambda(name string, mod ...func(*clientsdk.AppSpec)) clientsdk.AppSpec {
	return daemon(name, 1, append([]func(*clientsdk.AppSpec){func(s *clientsdk.AppSpec) { s.Kind = clientsdk.KindLambda }}, mod...)...)
}

func constraint(k, v string) func(*clientsdk.AppSpec) {
	return func(s *clientsdk.AppSpec) { s.Constraints = map[string]string{k: v} }
}

// node is a node heard from `ago` before t0.
func node(id string, ago time.Duration, mod ...func(*clientsdk.Node)) nodeSeen {
	n := clientsdk.Node{ID: id}
	for _, m := range mod {
		m(&n)
	}
	return nodeSeen{node: n, seen: t0.Add(-ago)}
}

func labels(kv ...string) func(*clientsdk.Node) {
	return func(n *clientsdk.Node) {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

// baseView is a healthy node "a" among nodes, with specs and claims.
func baseView(self string, specs []clientsdk.AppSpec, nodes []nodeSeen, claims map[string]claim) view {
	v := view{self: self, now: t0, nodeTimeout: 3 * time.Second, selfOK: true, stableView: true,
		specs: map[string]*clientsdk.AppSpec{}, nodes: map[string]nodeSeen{}, claims: claims,
		local: map[string]bool{}, stopping: map[string]bool{}, unclaimedSince: map[string]time.Time{}, hostedElsewhere: map[string]bool{}}
	for _, s := range specs {
		v.specs[s.Name] = &s
	}
	for _, n := range nodes {
		v.nodes[n.node.ID] = n
		if n.node.ID == self {
			v.labels, v.maxInstances, v.draining = n.node.Labels, n.node.MaxInstances, n.node.Draining
		}
	}
	if v.claims == nil {
		v.claims = map[string]claim{}
	}
	return v
}

// summary renders actions for comparison: "claim KEY", "takeover KEY@REV",
// "run KEY", "stop KEY reason", "lambda NAME"; a takeover from a silent
// owner adds "if OWNER is dead" (confirmed from the bucket before it).
func summary(a actions) []string {
	var out []string
	for _, r := range a.run {
		switch r.claim {
		case claimCreate:
			out = append(out, "claim "+r.key)
		case claimTakeover:
			line := fmt.Sprintf("takeover %s@%d", r.key, r.rev)
			if r.silentOwner != "" {
				line += " if " + r.silentOwner + " is dead"
			}
			out = append(out, line)
		default:
			out = append(out, "run "+r.key)
		}
	}
	for _, s := range a.stops {
		out = append(out, fmt.Sprintf("stop %s %s", s.key, s.reason))
	}
	for name := range a.lambdas {
		out = append(out, "lambda "+name)
	}
	slices.Sort(out)
	return out
}

func TestPlanTable(t *testing.T) {
	ab := []nodeSeen{node("a", 0), node("b", 0)}
	for _, c := range []struct {
		name string
		v    view
		want []string
	}{
		{"unclaimed instances spread: a claims its share",
			baseView("a", []clientsdk.AppSpec{daemon("web", 4)}, ab, nil),
			[]string{"claim web.1", "claim web.2"}},
		{"the same view from b claims the rest",
			baseView("b", []clientsdk.AppSpec{daemon("web", 4)}, ab, nil),
			[]string{"claim web.0", "claim web.3"}},
		{"own claims run; live nodes' claims are left alone",
			baseView("a", []clientsdk.AppSpec{daemon("web", 2)}, ab, map[string]claim{"web.0": {"a", 5}, "web.1": {"b", 6}}),
			[]string{"run web.0"}},
		{"constraints: only matching nodes claim",
			baseView("a", []clientsdk.AppSpec{daemon("web", 2, constraint("zone", "b"))},
				[]nodeSeen{node("a", 0, labels("zone", "a")), node("b", 0, labels("zone", "b"))}, nil),
			nil},
		{"constraints: the matching node claims all",
			baseView("b", []clientsdk.AppSpec{daemon("web", 2, constraint("zone", "b"))},
				[]nodeSeen{node("a", 0, labels("zone", "a")), node("b", 0, labels("zone", "b"))}, nil),
			[]string{"claim web.0", "claim web.1"}},
		{"max-instances: a full node claims nothing more",
			baseView("a", []clientsdk.AppSpec{daemon("web", 3)},
				[]nodeSeen{node("a", 0, func(n *clientsdk.Node) { n.MaxInstances = 1 })}, map[string]claim{"web.0": {"a", 1}}),
			[]string{"run web.0"}},
		{"takeover after the node timeout, at the dead owner's revision",
			baseView("a", []clientsdk.AppSpec{daemon("web", 1)}, []nodeSeen{node("a", 0), node("b", 4*time.Second)},
				map[string]claim{"web.0": {"b", 9}}),
			[]string{"takeover web.0@9 if b is dead"}},
		{"takeover of a claim whose owner left no heartbeat at all",
			baseView("a", []clientsdk.AppSpec{daemon("web", 1)}, []nodeSeen{node("a", 0)},
				map[string]claim{"web.0": {"gone", 3}}),
			[]string{"takeover web.0@3 if gone is dead"}},
		{"no takeover before the node timeout",
			baseView("a", []clientsdk.AppSpec{daemon("web", 1)}, []nodeSeen{node("a", 0), node("b", 2*time.Second)},
				map[string]claim{"web.0": {"b", 9}}),
			nil},
		{"no takeover without a stable view of our own health",
			with(baseView("a", []clientsdk.AppSpec{daemon("web", 1)}, []nodeSeen{node("a", 0), node("b", 10*time.Second)},
				map[string]claim{"web.0": {"b", 9}}), func(v *view) { v.stableView = false }),
			nil},
		{"a draining owner's instances are taken over, without waiting for it to die",
			baseView("a", []clientsdk.AppSpec{daemon("web", 1)}, []nodeSeen{node("a", 0), node("b", 0, func(n *clientsdk.Node) { n.Draining = true })},
				map[string]claim{"web.0": {"b", 9}}),
			[]string{"takeover web.0@9"}},
		{"a draining node claims nothing",
			baseView("b", []clientsdk.AppSpec{daemon("web", 2)}, []nodeSeen{node("a", 0), node("b", 0, func(n *clientsdk.Node) { n.Draining = true })}, nil),
			nil},
		{"fenced: every local instance stops, nothing runs",
			with(baseView("a", []clientsdk.AppSpec{daemon("web", 1)}, ab, map[string]claim{"web.0": {"a", 1}}), func(v *view) {
				v.fenced, v.local["web.0"] = true, true
			}),
			[]string{"stop web.0 fenced"}},
		{"a claim that moved: the local copy stops",
			with(baseView("a", []clientsdk.AppSpec{daemon("web", 1)}, ab, map[string]claim{"web.0": {"b", 3}}), func(v *view) { v.local["web.0"] = true }),
			[]string{"stop web.0 moved"}},
		{"scale down, kill and remove stop with their reasons",
			with(baseView("a", []clientsdk.AppSpec{daemon("web", 1), daemon("k", 1, func(s *clientsdk.AppSpec) { s.Stopped = true })}, ab,
				map[string]claim{"web.0": {"a", 1}, "web.1": {"a", 2}, "k.0": {"a", 3}, "gone.0": {"a", 4}}), func(v *view) {
				v.local["web.0"], v.local["web.1"], v.local["k.0"], v.local["gone.0"] = true, true, true, true
			}),
			[]string{"run web.0", "stop gone.0 removed", "stop k.0 killed", "stop web.1 scaled"}},
		{"after a lost connection, running copies keep running but nothing new starts",
			with(baseView("a", []clientsdk.AppSpec{daemon("web", 3)}, ab, map[string]claim{"web.0": {"a", 1}, "web.1": {"a", 2}}), func(v *view) {
				v.resync, v.local["web.0"] = true, true
			}),
			[]string{"run web.0"}},
		{"a key still stopping here is neither run nor claimed",
			with(baseView("a", []clientsdk.AppSpec{daemon("web", 1)}, []nodeSeen{node("a", 0)}, nil), func(v *view) { v.stopping["web.0"] = true }),
			nil},
		{"lambdas: hosted where eligible",
			baseView("a", []clientsdk.AppSpec{lambda("f"), lambda("g", constraint("zone", "x")), lambda("s", func(s *clientsdk.AppSpec) { s.Stopped = true })}, ab, nil),
			[]string{"lambda f"}},
		{"lambdas: a draining node keeps one until another node hosts it",
			with(baseView("a", []clientsdk.AppSpec{lambda("f"), lambda("g")}, []nodeSeen{node("a", 0, func(n *clientsdk.Node) { n.Draining = true }), node("b", 0)}, nil),
				func(v *view) { v.hostedElsewhere["g"] = true }),
			[]string{"lambda f"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := summary(plan(c.v)); !slices.Equal(got, c.want) {
				t.Fatalf("plan =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
			}
		})
	}
}

func with(v view, f func(*view)) view { f(&v); return v }

// A node that is not the preferred one claims an unclaimed key only after
// twice the node timeout (the preferred one may be slow, or gone).
func TestPlanLateClaim(t *testing.T) {
	v := baseView("a", []clientsdk.AppSpec{daemon("web", 4)}, []nodeSeen{node("a", 0), node("b", 0)}, nil)
	first := plan(v)
	if got := summary(first); !slices.Equal(got, []string{"claim web.1", "claim web.2"}) {
		t.Fatalf("first plan: %v", got)
	}
	v.unclaimedSince = first.unclaimedSince
	v.now = t0.Add(7 * time.Second)
	v.nodes["b"] = node("b", -7*time.Second) // b still heartbeats but claims nothing
	if got := summary(plan(v)); !slices.Equal(got, []string{"claim web.0", "claim web.1", "claim web.2", "claim web.3"}) {
		t.Fatalf("after 2× the node timeout: %v", got)
	}
}

// Every key is claimed by exactly one node when all see the same view.
func TestPlanClaimsEachKeyOnce(t *testing.T) {
	var nodes []nodeSeen
	for i := range 10 {
		nodes = append(nodes, node(fmt.Sprintf("n%d", i), 0))
	}
	specs := []clientsdk.AppSpec{daemon("web", 37), daemon("api", 13)}
	owners := map[string][]string{}
	load := map[string]int{}
	for _, n := range nodes {
		for _, a := range plan(baseView(n.node.ID, specs, nodes, nil)).run {
			owners[a.key] = append(owners[a.key], n.node.ID)
			load[n.node.ID]++
		}
	}
	if len(owners) != 50 {
		t.Fatalf("%d keys claimed, want 50", len(owners))
	}
	for key, o := range owners {
		if len(o) != 1 {
			t.Fatalf("%s claimed by %v", key, o)
		}
	}
	for id, n := range load {
		if n < 4 || n > 6 {
			t.Fatalf("node %s claims %d of 50 on 10 nodes: %v", id, n, load)
		}
	}
}

// BenchmarkPlan plans 1,000 instances on 10 nodes (the goal: under
// 5 ms on these machines).
func BenchmarkPlan(b *testing.B) {
	var nodes []nodeSeen
	for i := range 10 {
		nodes = append(nodes, node(fmt.Sprintf("n%d", i), 0))
	}
	var specs []clientsdk.AppSpec
	for i := range 100 {
		specs = append(specs, daemon(fmt.Sprintf("app%d", i), 10))
	}
	claims := map[string]claim{}
	for i, s := range specs {
		for j := range 10 {
			if (i+j)%3 != 0 { // two thirds claimed, one third to place
				claims[clientsdk.InstanceKey(s.Name, j)] = claim{node: fmt.Sprintf("n%d", (i+j)%10), rev: uint64(i*10 + j + 1)}
			}
		}
	}
	v := baseView("n0", specs, nodes, claims)
	b.ResetTimer()
	for range b.N {
		plan(v)
	}
}
