package main

import (
	"context"
	"fmt"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

func newRestartCmd() *cobra.Command {
	f := &struct {
		nameFlags
		wait     deployWait
		parallel int
	}{}
	cmd := &cobra.Command{
		Use:     "restart NAME",
		Aliases: []string{"reload"},
		Short:   "Replace every instance of an app with a fresh one, without downtime",
		Long: `Replace every instance of an app with a fresh worker of the same version, one
at a time (--parallel N at a time): each new worker starts and gets ready
before the gateways stop sending requests to the one it replaces, which then
finishes the requests in flight (up to its kill timeout) and is stopped. With
a fixed --port, each instance is stopped and then started, one at a time, so
that the others keep serving. A new worker that does not get ready stops the
restart: the instances not yet replaced keep running, and restart exits 1.
Lambdas get fresh workers on their next invocation.`,
		Example: "  dartup restart web\n  dartup reload web --parallel 2\n  dartup restart web --detach\n  dartup restart all            # every app, one after the other",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.parallel < 0 {
				return usageErr(fmt.Errorf("--parallel must be at least 1, not %d", f.parallel))
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				return forEachApp(ctx, c, args[0], func(name string) error {
					spec, err := c.Restart(ctx, name, f.parallel)
					if err != nil {
						return err
					}
					sum := &clientsdk.AppSummary{Name: spec.Name, Kind: spec.Kind, State: clientsdk.AppAlive}
					return f.wait.await(cmd, c, spec.Name, spec.Version, spec.Revision, sum, f.json)
				})
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the outcome as JSON: {outcome, revision, app}")
	cmd.Flags().IntVar(&f.parallel, "parallel", 0, "instances replaced at once (default: the app's, 1 unless pushed with --parallel)")
	f.wait.register(cmd)
	return cmd
}
