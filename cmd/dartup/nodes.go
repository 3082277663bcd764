package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

type nodesFlags struct {
	conn  connFlags
	json  bool
	wait  time.Duration
	force bool
}

func newNodesCmd() *cobra.Command {
	f := &nodesFlags{}
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List the runner nodes; drain one before taking it down",
		Example: `  dartup nodes
  dartup nodes --json
  dartup nodes drain node-b      # move its daemons away, stop its lambdas, wait until empty
  dartup nodes undrain node-b`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				nodes, err := c.Nodes(ctx)
				if err != nil {
					return err
				}
				return printNodes(cmd.OutOrStdout(), nodes, f.json)
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	cmd.AddCommand(newDrainCmd(true), newDrainCmd(false))
	return cmd
}

func printNodes(w io.Writer, nodes []clientsdk.Node, asJSON bool) error {
	if asJSON {
		if nodes == nil {
			nodes = []clientsdk.Node{}
		}
		return printJSON(w, nodes)
	}
	if len(nodes) == 0 {
		_, err := fmt.Fprintln(w, "No runner nodes.")
		return err
	}
	var rows [][]string
	for _, n := range nodes {
		state := "ready"
		if n.Draining {
			state = "draining"
		}
		if !n.Alive {
			state = "dead (silent " + humanDuration(n.HeartbeatAge.D()) + ")"
		}
		var labels []string
		for k, v := range n.Labels {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		inst := strconv.Itoa(n.Instances)
		if n.MaxInstances > 0 {
			inst += "/" + strconv.Itoa(n.MaxInstances)
		}
		rows = append(rows, []string{n.ID, n.Name, state, inst, strconv.Itoa(n.Lambdas), fmt.Sprintf("%.2f", n.Load1),
			strings.Join(labels, ","), orNone(n.ConnectedTo), humanDuration(n.HeartbeatAge.D()) + " ago"})
	}
	return table(w, []string{"id", "name", "state", "instances", "lambdas", "load", "labels", "connected to", "last heartbeat"}, rows)
}

func newDrainCmd(drain bool) *cobra.Command {
	f := &nodesFlags{}
	use, short, example := "drain NODE", "Move a node's daemons to other nodes and stop its lambdas; wait until it is empty",
		"  dartup nodes drain node-b --wait 2m\n  dartup nodes drain node-b --force   # even when nothing else can take its work"
	if !drain {
		use, short, example = "undrain NODE", "Let a drained node take work again", "  dartup nodes undrain node-b"
	}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				if !drain {
					n, err := c.Drain(ctx, args[0], false)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Node %s takes work again.\n", n.ID)
					return nil
				}
				if !f.force {
					if err := checkDrainable(ctx, c, args[0]); err != nil {
						return err
					}
				}
				n, err := c.Drain(ctx, args[0], true)
				if err != nil {
					return err
				}
				return waitDrained(ctx, cmd, c, n, f.wait)
			})
		},
	}
	f.conn.register(cmd)
	if drain {
		cmd.Flags().DurationVar(&f.wait, "wait", time.Minute, "how long to wait for the node to be empty")
		cmd.Flags().BoolVar(&f.force, "force", false, "drain even when no other live node can take some of its work")
	}
	return cmd
}

// checkDrainable refuses to drain node when some of its work could go
// nowhere else (see clientsdk.DrainBlockers).
func checkDrainable(ctx context.Context, c *clientsdk.Client, node string) error {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return err
	}
	apps, err := c.List(ctx)
	if err != nil {
		return err
	}
	var infos []clientsdk.AppInfo
	for _, a := range apps {
		info, err := c.Describe(ctx, a.Name)
		if err == nil {
			infos = append(infos, *info)
		}
	}
	if b := clientsdk.DrainBlockers(node, nodes, infos); len(b) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("not draining %s: no other live node could take %s; add or undrain a node that can, or pass --force to drain anyway",
			node, strings.Join(b, "; "))}
	}
	return nil
}

// waitDrained waits until node n runs nothing, up to wait; on timeout it
// says the node is still draining and how to undo it.
func waitDrained(ctx context.Context, cmd *cobra.Command, c *clientsdk.Client, n *clientsdk.Node, wait time.Duration) error {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "Draining %s: %d instances, %d lambdas to move…\n", n.ID, n.Instances, n.Lambdas)
	deadline := time.Now().Add(wait)
	for {
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return err
		}
		for _, x := range nodes {
			if x.ID == n.ID {
				n = &x
			}
		}
		if n.Instances == 0 && n.Lambdas == 0 {
			fmt.Fprintf(w, "Node %s is drained: it runs nothing; stop it now.\n", n.ID)
			return nil
		}
		if time.Now().After(deadline) {
			return &exitError{code: 1, err: fmt.Errorf("node %s still runs %d instances and %d lambdas after %s; it stays draining (other nodes take its work as they can): wait longer with `dartup nodes`, or undo it with `dartup nodes undrain %s`",
				n.ID, n.Instances, n.Lambdas, wait, n.ID)}
		}
		if isTTY(os.Stderr) {
			fmt.Fprintf(os.Stderr, "\r  %d instances, %d lambdas left   ", n.Instances, n.Lambdas)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
