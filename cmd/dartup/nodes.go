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
	conn connFlags
	json bool
	wait time.Duration
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
		if age := time.Since(n.LastSeen); age > 3*time.Second {
			state = "silent " + humanDuration(age)
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
			strings.Join(labels, ","), n.Address, humanDuration(time.Since(n.LastSeen)) + " ago"})
	}
	return table(w, []string{"id", "name", "state", "instances", "lambdas", "load", "labels", "address", "last seen"}, rows)
}

func newDrainCmd(drain bool) *cobra.Command {
	f := &nodesFlags{}
	use, short, example := "drain NODE", "Move a node's daemons to other nodes and stop its lambdas; wait until it is empty", "  dartup nodes drain node-b --wait 2m"
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
				n, err := c.Drain(ctx, args[0], drain)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if !drain {
					fmt.Fprintf(w, "Node %s takes work again.\n", n.ID)
					return nil
				}
				fmt.Fprintf(w, "Draining %s: %d instances, %d lambdas to move…\n", n.ID, n.Instances, n.Lambdas)
				deadline := time.Now().Add(f.wait)
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
						return fmt.Errorf("node %s still runs %d instances and %d lambdas after %s; are other nodes eligible and live? (`dartup nodes`)", n.ID, n.Instances, n.Lambdas, f.wait)
					}
					if isTTY(os.Stderr) {
						fmt.Fprintf(os.Stderr, "\r  %d instances, %d lambdas left   ", n.Instances, n.Lambdas)
					}
					time.Sleep(250 * time.Millisecond)
				}
			})
		},
	}
	f.conn.register(cmd)
	if drain {
		cmd.Flags().DurationVar(&f.wait, "wait", time.Minute, "how long to wait for the node to be empty")
	}
	return cmd
}
