package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

type logsFlags struct {
	conn       connFlags
	json       bool
	follow     bool
	lines      string
	instance   int
	timestamps bool
	events     bool
}

func newLogsCmd() *cobra.Command {
	f := &logsFlags{}
	cmd := &cobra.Command{
		Use:   "logs [NAME]",
		Short: "Print the apps' output (stdout and stderr of their workers), as pm2 logs",
		Long: `Print an app's output, or every app's without NAME, each line after
APP.INSTANCE (and "err" for standard error), with the lifecycle events in
their place (-- restarted: … --). --lines N prints the last N lines first
(0: none, all: everything kept), -f keeps printing new ones.
Timestamps are shown on a terminal (--timestamps=false to drop them).`,
		Example: `  dartup logs                     # the last 100 lines of every app
  dartup logs web --lines 50
  dartup logs web -f --instance 2
  dartup logs -f --lines 0        # only what comes from now on
  dartup logs web --json          # one JSON object per line`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cmd.SetContext(ctx)
			app := ""
			if len(args) == 1 {
				app = args[0]
			}
			if !cmd.Flags().Changed("timestamps") {
				f.timestamps = isTTY(os.Stdout)
			}
			if app == "" && f.instance >= 0 {
				return usageErr(fmt.Errorf("--instance needs an app: dartup logs NAME --instance %d", f.instance))
			}
			if f.follow {
				f.conn.extra = append(f.conn.extra, followNotices()...)
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				if app != "" {
					ai, err := c.Describe(ctx, app)
					if err != nil {
						return err
					}
					if f.instance >= 0 && ai.Spec.Kind == clientsdk.KindDaemon && f.instance >= ai.Spec.Instances {
						return usageErr(fmt.Errorf("%s has instances 0 to %d, not %d", app, ai.Spec.Instances-1, f.instance))
					}
				}
				w := cmd.OutOrStdout()
				// Logs may wait inside nats.go (a server that is down) without
				// looking at ctx: a signal ends the command at once anyway.
				done := make(chan error, 1)
				go func() { done <- c.Logs(ctx, app, opts, func(l clientsdk.LogLine) { f.print(w, l) }) }()
				select {
				case err := <-done:
					return err
				case <-ctx.Done():
					return nil
				}
			})
		},
	}
	f.conn.register(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&f.json, "json", false, "print one JSON object per line")
	fs.BoolVarP(&f.follow, "follow", "f", false, "keep printing new lines")
	fs.StringVar(&f.lines, "lines", "100", "how many recent lines to print first: a number (0: none) or all")
	fs.IntVar(&f.instance, "instance", -1, "only this instance (with NAME)")
	fs.BoolVar(&f.timestamps, "timestamps", false, "print each line's time (default: on a terminal)")
	fs.BoolVar(&f.events, "events", true, "interleave lifecycle events: -- restarted: … --")
	return cmd
}

// followNotices say on stderr when logs -f loses its server and gets it
// back, so that a pause is not taken for a quiet app.
func followNotices() []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			fmt.Fprintln(os.Stderr, "-- lost the connection to the server; reconnecting (Ctrl-C to stop) --")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			fmt.Fprintf(os.Stderr, "-- reconnected to %s; following on --\n", nc.ConnectedUrlRedacted())
		}),
	}
}

// options turns the flags into the SDK's options.
func (f *logsFlags) options() (clientsdk.LogsOptions, error) {
	o := clientsdk.LogsOptions{Instance: f.instance, Follow: f.follow, Events: f.events}
	if f.lines == "all" {
		return o, nil
	}
	n, err := strconv.Atoi(f.lines)
	if err != nil || n < 0 {
		return o, usageErr(fmt.Errorf("--lines is a number of lines or all, not %q", f.lines))
	}
	o.Lines, o.NoHistory = n, n == 0
	return o, nil
}

// print writes one line: JSON, or "[TIME ]APP.INSTANCE[ err] | LINE".
func (f *logsFlags) print(w io.Writer, l clientsdk.LogLine) {
	if f.json {
		b, _ := json.Marshal(l)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	prefix := fmt.Sprintf("%s.%d", l.App, l.Instance)
	switch {
	case l.Stream == "err":
		prefix += " err"
	case l.Stream == clientsdk.StreamEvent && l.Instance < 0:
		prefix = l.App
	}
	if f.timestamps {
		prefix = l.Time.Local().Format(time.DateTime+".000") + " " + prefix
	}
	fmt.Fprintf(w, "%s | %s\n", printable(prefix), printable(l.Line))
}
