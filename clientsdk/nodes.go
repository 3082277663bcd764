package clientsdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
)

// Nodes returns the runner nodes registered with the server, sorted by id.
// Errors: transport errors, *Error from the server.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var nodes []Node
	if err := c.call(ctx, VerbNodes, nil, &nodes); err != nil {
		return nil, err
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes, nil
}

// Drain asks node to drain (drain true: move its daemons to other nodes and
// stop serving lambdas) or to take work again (false). It returns the node's
// entry as it answered. Errors: *Error 404 when no such node answers.
func (c *Client) Drain(ctx context.Context, node string, drain bool) (*Node, error) {
	if err := ValidateName(node); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(DrainRequest{Drain: drain})
	msg, err := c.nc.RequestWithContext(ctx, NodeControlSubject(node, "drain"), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, Errorf(404, "NotFound", "no node %q answers; `dartup nodes` lists them", node)
	}
	if err != nil {
		return nil, fmt.Errorf("drain %s: %w", node, err)
	}
	if e := ErrorFromMsg(msg); e != nil {
		return nil, e
	}
	var n Node
	if err := json.Unmarshal(msg.Data, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// DrainBlockers lists what draining node would strand: the instances and
// lambdas it runs (apps, with their specs) that no other live node that is
// not draining could take — its labels do not match the app's constraints,
// or (daemons) it is at its max-instances. Empty when the drain can finish.
func DrainBlockers(node string, nodes []Node, apps []AppInfo) []string {
	var out []string
	var lambdasHere []string
	for _, n := range nodes {
		if n.ID == node {
			lambdasHere = n.LambdaNames
		}
	}
	canTake := func(spec AppSpec) bool {
		for _, n := range nodes {
			if n.ID == node || !n.Alive || n.Draining || !MatchesConstraints(spec.Constraints, n.Labels) {
				continue
			}
			if spec.Kind == KindDaemon && n.MaxInstances > 0 && n.Instances >= n.MaxInstances {
				continue
			}
			return true
		}
		return false
	}
	for _, a := range apps {
		here := 0
		isLambdaHere := a.Spec.Kind == KindLambda && slices.Contains(lambdasHere, a.Spec.Name)
		for _, in := range a.Summary.Instances {
			switch {
			case in.Node != node || in.State == StateLost || in.State == StateErrored:
			case in.Instance < 0:
				isLambdaHere = true // a lambda's status entry from this node: hosted here
			case in.State != StateStopped:
				here++
			}
		}
		if (here == 0 && !isLambdaHere) || canTake(a.Spec) {
			continue
		}
		what := fmt.Sprintf("daemon %s (%d here)", a.Spec.Name, here)
		if isLambdaHere {
			what = "lambda " + a.Spec.Name
		}
		if len(a.Spec.Constraints) > 0 {
			what += " (constraint " + constraintText(a.Spec.Constraints) + ")"
		}
		out = append(out, what)
	}
	return out
}

func constraintText(c map[string]string) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + c[k]
	}
	return strings.Join(parts, ",")
}
