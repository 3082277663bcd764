package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

func newRollbackCmd() *cobra.Command {
	f := &struct {
		nameFlags
		wait deployWait
		to   string
	}{}
	cmd := &cobra.Command{
		Use:   "rollback NAME",
		Short: "Run a kept earlier version of an app again, as a new version, without downtime",
		Long: `Make a kept version of an app (see 'dartup history NAME') its desired state
again: by default the version before (the newest older one whose spec
differs from the current one), or --to VERSION. The
old version's spec and artifact are stored as a NEW version (the next
number, marked "rollback of vN"), so daemons roll over to it one instance
at a time as after a push, without dropping requests, and lambdas get new
workers. A killed app stays killed ('dartup start' runs it), and the
number of versions kept (push --history) stays as it is. Like push,
rollback waits for the outcome and exits 1 when the version does not get
ready or ends in error (the instances not yet replaced keep running).`,
		Example: "  dartup rollback web              # back to the version before\n  dartup rollback web --to 3\n  dartup rollback web --to 3 --detach --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				to, err := parseVersion(f.to)
				if err != nil {
					return err
				}
				spec, err := c.Rollback(ctx, args[0], to)
				if err != nil {
					return err
				}
				if !f.json {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: version %d is a rollback of version %d\n", spec.Name, spec.Version, spec.RollbackOf)
					if spec.Stopped {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s is killed: 'dartup start %s' runs version %d\n", spec.Name, spec.Name, spec.Version)
					}
				}
				return f.wait.awaitSpec(cmd, c, spec, f.json)
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the outcome as JSON: {outcome, revision, app}")
	cmd.Flags().StringVar(&f.to, "to", "", "the kept `VERSION` to run again, a number from 'dartup history' (default: the newest older one that differs)")
	f.wait.register(cmd)
	return cmd
}

// parseVersion reads --to: "" for the default (0), else a version number
// in decimal, at least 1 (not 010 read as octal, nor 0x3).
func parseVersion(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	switch {
	case err != nil:
		return 0, usageErr(fmt.Errorf("--to %q is not a version number; see `dartup history NAME`", s))
	case v == 0:
		return 0, usageErr(fmt.Errorf("--to 0: versions start at 1; leave --to out to go back to the version before"))
	}
	return v, nil
}
