package main

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

type logsFlags struct {
	conn     connFlags
	json     bool
	follow   bool
	lines    int
	instance int
}

func newLogsCmd() *cobra.Command {
	f := &logsFlags{}
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print an app's output (stdout and stderr of its workers)",
		Example: `  dartup logs web --lines 50
  dartup logs web -f --instance 2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cmd.SetContext(ctx)
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				if _, err := c.Describe(ctx, args[0]); err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				return c.Logs(ctx, args[0], clientsdk.LogsOptions{Instance: f.instance, Lines: f.lines, Follow: f.follow}, func(l clientsdk.LogLine) {
					if f.json {
						_ = printJSON(w, l)
						return
					}
					fmt.Fprintf(w, "%s#%d %s| %s\n", l.App, l.Instance, l.Stream, printable(l.Line))
				})
			})
		},
	}
	f.conn.register(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&f.json, "json", false, "print one JSON object per line")
	fs.BoolVarP(&f.follow, "follow", "f", false, "keep printing new lines")
	fs.IntVar(&f.lines, "lines", 100, "how many recent lines to print first (0: all kept)")
	fs.IntVar(&f.instance, "instance", -1, "only this instance")
	return cmd
}
