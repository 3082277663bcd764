package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

// dlqFlags are the flags of the dlq subcommands.
type dlqFlags struct {
	conn connFlags
	json bool
}

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, run again or delete the dead letters: async events that failed for good",
		Long: `An async event (dartup invoke --async, InvokeAsync, HTTP with
X-Amz-Invocation-Type: Event, a publish on dartup.async.NAME, a schedule's
tick) that failed 1 + --retries times, outlived its lambda's --max-event-age,
or was sent to a name that is no lambda goes to the dead letters (stream
DARTUP_DLQ, kept 14 days) with its attempts, last error and times.`,
		Example: `  dartup dlq ls                  # every lambda's dead letters
  dartup dlq show 42             # headers and event of dead letter 42
  dartup dlq redrive mail        # run all of mail's again (after a fix)
  dartup dlq purge mail`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newDLQListCmd(), newDLQShowCmd(), newDLQRedriveCmd(), newDLQPurgeCmd())
	return cmd
}

func newDLQListCmd() *cobra.Command {
	f := &dlqFlags{}
	cmd := &cobra.Command{
		Use:     "ls [NAME]",
		Aliases: []string{"list"},
		Short:   "List the dead letters, of one lambda or of all (the newest 1000)",
		Example: "  dartup dlq ls\n  dartup dlq ls mail --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				l, err := c.DeadLetters(ctx, name)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), l)
				}
				return printDeadLetters(cmd.OutOrStdout(), l)
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return cmd
}

func printDeadLetters(w io.Writer, l *clientsdk.DLQListResponse) error {
	if len(l.DeadLetters) == 0 {
		_, err := fmt.Fprintln(w, "No dead letters.")
		return err
	}
	var rows [][]string
	for _, d := range l.DeadLetters {
		rows = append(rows, []string{strconv.FormatUint(d.ID, 10), d.App, d.RequestID, strconv.Itoa(d.Attempts),
			cut(errorText(d), 80), d.Time.Local().Format(time.DateTime)})
	}
	if err := table(w, []string{"id", "app", "request id", "attempts", "last error", "time"}, rows); err != nil {
		return err
	}
	if l.Total > uint64(len(l.DeadLetters)) {
		fmt.Fprintf(w, "(the newest %d of %d)\n", len(l.DeadLetters), l.Total)
	}
	return nil
}

// errorText is a dead letter's error: "Type: message".
func errorText(d clientsdk.DeadLetter) string {
	switch {
	case d.ErrorType != "" && d.Error != "":
		return d.ErrorType + ": " + d.Error
	case d.ErrorType != "":
		return d.ErrorType
	}
	return d.Error
}

// cut shortens s to n runes with an ellipsis.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func newDLQShowCmd() *cobra.Command {
	f := &dlqFlags{}
	cmd := &cobra.Command{
		Use:     "show ID",
		Short:   "Show a dead letter: its headers (attempts, errors, times) and its event",
		Example: "  dartup dlq show 42\n  dartup dlq show 42 --json | jq .event",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return usageErr(fmt.Errorf("%q is not a dead letter id (the ID column of `dartup dlq ls`)", args[0]))
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				d, err := c.DeadLetter(ctx, id)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), d)
				}
				return printDeadLetter(cmd.OutOrStdout(), d)
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return cmd
}

func printDeadLetter(w io.Writer, d *clientsdk.DeadLetter) error {
	fmt.Fprintf(w, "dead letter %d of %s, stored %s\n", d.ID, printable(d.App), d.Time.Local().Format(time.DateTime))
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, printable(strings.Join(d.Headers[k], ", ")))
	}
	fmt.Fprintf(w, "event (%d bytes):\n", d.Size)
	_, err := fmt.Fprintln(w, printable(string(d.Event)))
	return err
}

func newDLQRedriveCmd() *cobra.Command {
	f := &dlqFlags{}
	cmd := &cobra.Command{
		Use:   "redrive NAME [ID…]",
		Short: "Store dead letters of lambda NAME again as async events (all of its, without IDs), keeping their request ids",
		Example: `  dartup dlq redrive mail          # every dead letter of mail
  dartup dlq redrive mail 42 43`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []uint64
			for _, a := range args[1:] {
				id, err := strconv.ParseUint(a, 10, 64)
				if err != nil || id == 0 {
					return usageErr(fmt.Errorf("%q is not a dead letter id (the ID column of `dartup dlq ls`)", a))
				}
				ids = append(ids, id)
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				r, err := c.Redrive(ctx, args[0], ids...)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), r)
				}
				for _, d := range r.Redriven {
					fmt.Fprintf(cmd.OutOrStdout(), "%d  %s\n", d.ID, d.RequestID)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Redrove %d dead letters of %s.\n", len(r.Redriven), args[0])
				return err
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return cmd
}

func newDLQPurgeCmd() *cobra.Command {
	f := &dlqFlags{}
	cmd := &cobra.Command{
		Use:     "purge NAME",
		Short:   "Delete every dead letter of NAME",
		Example: "  dartup dlq purge mail",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				n, err := c.PurgeDeadLetters(ctx, args[0])
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), clientsdk.DLQPurgeResponse{Purged: n})
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Deleted %d dead letters of %s.\n", n, args[0])
				return err
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return cmd
}
