package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

func newHistoryCmd() *cobra.Command {
	f := &nameFlags{}
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "List the versions an app keeps, newest first, with what changed in each",
		Long: `List the versions an app keeps (the last 10, or push --history N), newest
first: when and by whom each was pushed, what changed from the version
before it (environment values are not shown), and which one is current.
A version made by 'dartup rollback' says which version it came from. Any
kept version can be run again with 'dartup rollback NAME --to VERSION'.`,
		Example: "  dartup history web\n  dartup history web --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				h, err := c.History(ctx, args[0])
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), h)
				}
				return printHistory(cmd.OutOrStdout(), h, time.Now())
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the versions as JSON: {name, current, keep, versions: [{version, pushed_at, pushed_by, rollback_of, sha256, current, changes}], rollback_to}")
	return cmd
}

// printHistory writes h as a table, newest first, the current version
// marked with *, and a line on what rollback would do.
func printHistory(w io.Writer, h *clientsdk.HistoryResponse, now time.Time) error {
	rows := make([][]string, 0, len(h.Versions))
	for _, v := range h.Versions {
		mark, note := "  ", ""
		if v.Current {
			mark = "* "
		}
		if v.RollbackOf != 0 {
			note = fmt.Sprintf("rollback of v%d", v.RollbackOf)
		}
		age := "-"
		if !v.PushedAt.IsZero() {
			age = humanDuration(max(now.Sub(v.PushedAt), 0)) + " ago"
		}
		rows = append(rows, []string{mark + strconv.FormatUint(v.Version, 10), age, orDash(v.PushedBy), shortChanges(v, 3), note})
	}
	if err := table(w, []string{"version", "pushed", "by", "changes", "note"}, rows); err != nil {
		return err
	}
	next := ""
	if h.RollbackTo != 0 {
		next = fmt.Sprintf("; 'dartup rollback %s' runs version %d again", h.Name, h.RollbackTo)
	}
	_, err := fmt.Fprintf(w, "%s keeps its last %s (* current)%s\n", h.Name, plural(h.Keep, "version", "versions"), next)
	return err
}

// shortChanges writes what changed in version v for a table cell:
// "artifact, env.A, instances 1→3", the first n then "+N more".
func shortChanges(v clientsdk.HistoryEntry, n int) string {
	switch {
	case v.Oldest && v.Version == 1:
		return "first version"
	case v.Oldest:
		return "(oldest kept)"
	case len(v.Changes) == 0:
		return "no change"
	}
	var items []string
	artifact := false
	for _, c := range v.Changes {
		if strings.HasPrefix(c.Field, "artifact.") || c.Field == "artifact" {
			if !artifact {
				items = append(items, "artifact")
			}
			artifact = true
			continue
		}
		items = append(items, shortChange(c))
	}
	if len(items) > n {
		items = append(items[:n], fmt.Sprintf("+%d more", len(items)-n))
	}
	return strings.Join(items, ", ")
}

// shortChange writes one change: "+field", "-field", "field old→new" for
// short values, or the field alone (long values, environment values).
func shortChange(c clientsdk.SpecChange) string {
	old, new := unquote(c.Old), unquote(c.New)
	switch {
	case c.Old == "":
		return "+" + c.Field
	case c.New == "":
		return "-" + c.Field
	case strings.HasPrefix(c.Field, "env."), len(old)+len(new) > 20:
		return c.Field
	}
	return c.Field + " " + old + "→" + new
}

// unquote returns a JSON string's text, and other JSON values as they are.
func unquote(v string) string {
	if s, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
		return s
	}
	return v
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
