package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

// addAppCommands adds the app management commands.
func addAppCommands(root *cobra.Command) {
	root.AddCommand(newPushCmd(), newKillCmd(), newStartCmd(), newRestartCmd(), newScaleCmd(), newRemoveCmd(), newLogsCmd(), newInvokeCmd(), newRunnerCmd(), newNodesCmd(), newDeployCmd(), newDiffCmd(), newDLQCmd())
}

// forEachApp runs fn for app name, or for every app when name is "all" (as
// PM2's stop/start/restart all) and no app is called that; the errors of
// the apps that failed are joined, after all were tried.
func forEachApp(ctx context.Context, c *clientsdk.Client, name string, fn func(name string) error) error {
	if name != "all" {
		return fn(name)
	}
	apps, err := c.List(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, a := range apps {
		if a.Name == "all" {
			return fn(name) // an app is called all: it is the one meant
		}
		names = append(names, a.Name)
	}
	if len(names) == 0 {
		return clientsdk.Errorf(404, "NotFound", "there are no apps")
	}
	var errs []error
	for _, n := range names {
		if err := fn(n); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

type nameFlags struct {
	conn connFlags
	json bool
}

func newKillCmd() *cobra.Command {
	f := &struct {
		nameFlags
		wait stopWait
	}{}
	cmd := &cobra.Command{
		Use:     "kill NAME",
		Aliases: []string{"stop"},
		Short:   "Stop every instance of an app; it stays stopped, across restarts, until `dartup start`",
		Long: `Stop every instance of an app (SIGTERM to each process group, its kill
timeout, then SIGKILL) and wait until the processes are gone. The app stays
stopped, across restarts of the servers, until 'dartup start'.`,
		Example: "  dartup kill web\n  dartup kill web --no-wait     # return at once\n  dartup kill all               # every app, as pm2 stop all",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				return forEachApp(ctx, c, args[0], func(name string) error {
					s, err := c.Kill(ctx, name)
					if err != nil || f.wait.noWait {
						return printOr(cmd, f.json, s, err)
					}
					wctx, cancel := f.wait.context(ctx, killTimeout(ctx, c, name))
					defer cancel()
					s2, err := c.WaitStopped(wctx, name)
					if s2 != nil {
						s = s2
					}
					if err := printOr(cmd, f.json, s, err); err != nil {
						return err
					}
					return unconfirmed(s, "stopped")
				})
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the app's summary as JSON")
	f.wait.register(cmd)
	return cmd
}

func newStartCmd() *cobra.Command {
	f := &struct {
		nameFlags
		wait deployWait
	}{}
	cmd := &cobra.Command{
		Use:   "start NAME",
		Short: "Start an app stopped with `dartup kill`, or restart an errored one, and wait until it runs",
		Long: `Start an app stopped with 'dartup kill', or start an errored one afresh, and
wait until every instance runs (or the lambda is hosted). Exits 1 when the
app ends in error or pending, or does not run within --wait.`,
		Example: "  dartup start web\n  dartup start web --detach\n  dartup start all              # every app",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				return forEachApp(ctx, c, args[0], func(name string) error {
					info, err := c.Describe(ctx, name)
					if err != nil {
						return err
					}
					s, err := c.Start(ctx, name)
					if err != nil {
						return err
					}
					// Start rewrites the spec: the next bucket revision or later.
					return f.wait.await(cmd, c, name, info.Spec.Version, info.Spec.Revision+1, s, f.json)
				})
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the outcome as JSON: {outcome, revision, app}")
	f.wait.register(cmd)
	return cmd
}

func newRemoveCmd() *cobra.Command {
	f := &struct {
		nameFlags
		wait stopWait
	}{}
	cmd := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm", "delete"},
		Short:   "Stop an app and delete its spec, artifacts and status; wait until its processes are gone",
		Example: "  dartup remove web\n  dartup remove web --no-wait",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				grace := killTimeout(ctx, c, args[0])
				before, _ := c.Describe(ctx, args[0])
				if err := c.Remove(ctx, args[0]); err != nil {
					if e, ok := clientsdk.AsError(err); ok && e.Code == 404 {
						// Already gone (a retry after a lost answer, or a second
						// remove): what was asked for is true.
						if f.json {
							return printJSON(cmd.OutOrStdout(), map[string]any{"removed": args[0], "already_gone": true})
						}
						_, err := fmt.Fprintf(cmd.OutOrStdout(), "No app %s: nothing to remove (it was removed before, or never pushed).\n", args[0])
						return err
					}
					return err
				}
				if !f.wait.noWait {
					wctx, cancel := f.wait.context(ctx, grace)
					defer cancel()
					if err := c.WaitRemoved(wctx, args[0]); err != nil {
						return err
					}
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), map[string]string{"removed": args[0]})
				}
				if _, err := fmt.Fprintf(cmd.OutOrStdout(), "Removed %s.\n", args[0]); err != nil {
					return err
				}
				if before != nil && !f.wait.noWait {
					return unconfirmed(&before.Summary, "removed")
				}
				return nil
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	f.wait.register(cmd)
	return cmd
}

// unconfirmed returns an error (exit code 1) when some of the app's
// instances were on nodes that do not answer: nothing confirms that their
// processes stopped.
func unconfirmed(s *clientsdk.AppSummary, done string) error {
	var nodes []string
	n := 0
	for _, in := range s.Instances {
		if in.State == clientsdk.StateLost {
			n++
			if !slices.Contains(nodes, in.Node) {
				nodes = append(nodes, in.Node)
			}
		}
	}
	if n == 0 {
		return nil
	}
	return &exitError{code: 1, err: fmt.Errorf("%s is %s, but %d instance(s) were on node %s, which is not answering: nothing confirms that their processes stopped; they stop when the node is back, and a node cut off from the servers stops its daemons by itself after its node timeout",
		s.Name, done, n, strings.Join(nodes, ", "))}
}

// killTimeout returns app name's kill timeout (the default when it cannot
// be read), which bounds how long stopping it may take.
func killTimeout(ctx context.Context, c *clientsdk.Client, name string) time.Duration {
	if info, err := c.Describe(ctx, name); err == nil {
		return info.Spec.WithDefaults().Restart.KillTimeout.D()
	}
	return clientsdk.DefaultKillTimeout
}

// printOr prints s (its summary line or JSON) and returns err.
func printOr(cmd *cobra.Command, asJSON bool, s *clientsdk.AppSummary, err error) error {
	if s != nil {
		if perr := printSummary(cmd, asJSON, s); perr != nil {
			return perr
		}
	}
	return err
}

func printSummary(cmd *cobra.Command, asJSON bool, s *clientsdk.AppSummary) error {
	if asJSON {
		return printJSON(cmd.OutOrStdout(), s)
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), listLine(*s))
	return err
}
