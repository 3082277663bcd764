package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

func newScaleCmd() *cobra.Command {
	f := &struct {
		nameFlags
		wait deployWait
	}{}
	cmd := &cobra.Command{
		Use:   "scale NAME N",
		Short: "Run N instances of a daemon: start the missing ones or stop the extra ones",
		Long: `Set how many instances of a daemon run, as pm2 scale does. The instances that
keep running are not restarted: new ones start beside them (on any node
that can take them), or those beyond N stop, the highest numbers first. The
app keeps its version; the number holds until the next push or scale. A
killed app stays killed and runs N instances once started. Like push, scale
waits until every instance runs (or --detach), and exits 1 when they do not.
Lambdas do not scale this way: their workers follow their invocations, up
to --max-workers per node.`,
		Example: "  dartup scale web 4\n  dartup scale web 1 --detach\n  dartup scale web 3 --json",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 || n > clientsdk.MaxInstances {
				return usageErr(fmt.Errorf("N must be a number of instances from 1 to %d, not %q", clientsdk.MaxInstances, args[1]))
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				spec, err := c.Scale(ctx, args[0], n)
				if err != nil {
					return err
				}
				if spec.Stopped && !f.json {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s is killed: 'dartup start %s' runs its %d instances\n", spec.Name, spec.Name, n)
				}
				return f.wait.awaitSpec(cmd, c, spec, f.json)
			})
		},
	}
	names := completeNames(appNames)
	cmd.ValidArgsFunction = func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp // N
		}
		return names(c, args, toComplete)
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the outcome as JSON: {outcome, revision, app}")
	f.wait.register(cmd)
	return cmd
}
