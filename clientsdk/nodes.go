package clientsdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

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
