package main

import (
	"context"
	"fmt"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

// addAppCommands adds the app management commands.
func addAppCommands(root *cobra.Command) {
	root.AddCommand(newPushCmd(), newKillCmd(), newStartCmd(), newRemoveCmd(), newLogsCmd(), newInvokeCmd(), newRunnerCmd(), newNodesCmd())
}

type nameFlags struct {
	conn connFlags
	json bool
}

func newKillCmd() *cobra.Command {
	cmd := newSummaryCmd("kill NAME", "Stop every instance of an app; it stays stopped, across restarts, until `dartup start`",
		"  dartup kill web", (*clientsdk.Client).Kill)
	cmd.Aliases = []string{"stop"}
	return cmd
}

func newStartCmd() *cobra.Command {
	return newSummaryCmd("start NAME", "Start an app stopped with `dartup kill`, or restart an errored one",
		"  dartup start web", (*clientsdk.Client).Start)
}

// newSummaryCmd builds a command that applies verb to app NAME and prints
// the app's summary line (or JSON).
func newSummaryCmd(use, short, example string, verb func(*clientsdk.Client, context.Context, string) (*clientsdk.AppSummary, error)) *cobra.Command {
	f := &nameFlags{}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				s, err := verb(c, ctx, args[0])
				if err != nil {
					return err
				}
				return printSummary(cmd, f.json, s)
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return cmd
}

func newRemoveCmd() *cobra.Command {
	f := &nameFlags{}
	cmd := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm", "delete"},
		Short:   "Stop an app and delete its spec, artifacts and status",
		Example: "  dartup remove web",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				if err := c.Remove(ctx, args[0]); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "Removed %s.\n", args[0])
				return err
			})
		},
	}
	f.conn.register(cmd)
	return cmd
}

func printSummary(cmd *cobra.Command, asJSON bool, s *clientsdk.AppSummary) error {
	if asJSON {
		return printJSON(cmd.OutOrStdout(), s)
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), listLine(*s))
	return err
}
