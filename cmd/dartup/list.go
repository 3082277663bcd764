package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

type listFlags struct {
	conn connFlags
	json bool
	wide bool
}

func newListCmd() *cobra.Command {
	f := &listFlags{}
	cmd := &cobra.Command{
		Use:     "list [NAME…]",
		Aliases: []string{"ls", "status"},
		Short:   "List the apps and their state",
		Example: `  dartup list
   • hello - dead
   • web - alive - 4/4 running
  dartup list web         # only web (several names may be given)
  dartup list --wide      # one row per instance: node, pid, uptime, restarts, ready, address, cpu, mem
  dartup list --json`,
		RunE: func(cmd *cobra.Command, names []string) error {
			for _, n := range names {
				if err := clientsdk.ValidateName(n); err != nil {
					return usageErr(err)
				}
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				apps, err := c.List(ctx)
				if err != nil {
					return err
				}
				if apps, err = onlyNamed(apps, names); err != nil {
					return err
				}
				return printList(cmd.OutOrStdout(), apps, f.json, f.wide)
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	cmd.Flags().BoolVar(&f.wide, "wide", false, "print a table with one row per instance")
	return cmd
}

// listLine is dart_up's list format: " • NAME - STATE - MESSAGE", the state
// green when alive and red on error on a terminal (as dart_up).
func listLine(a clientsdk.AppSummary) string {
	rest := ""
	if a.Message != "" {
		rest = " - " + a.Message
	}
	// Messages quote apps' errors: no control characters reach the terminal.
	return printable(" • "+a.Name+" - ") + paintState(a.State) + printable(rest)
}

// paintState colours an app state for a terminal.
func paintState(st clientsdk.AppState) string {
	s := printable(string(st))
	switch {
	case !stdoutColor():
		return s
	case st == clientsdk.AppAlive:
		return "\x1b[32m" + s + "\x1b[0m"
	case st == clientsdk.AppError:
		return "\x1b[31m" + s + "\x1b[0m"
	}
	return s
}

// stdoutColor reports whether standard output takes colours: a terminal,
// without NO_COLOR (https://no-color.org) or TERM=dumb.
func stdoutColor() bool {
	return isTTY(os.Stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

func printList(w io.Writer, apps []clientsdk.AppSummary, asJSON, wide bool) error {
	if asJSON {
		return printJSON(w, apps)
	}
	if len(apps) == 0 {
		_, err := fmt.Fprintln(w, "No active applications.")
		return err
	}
	if !wide {
		for _, a := range apps {
			fmt.Fprintln(w, listLine(a))
		}
		return nil
	}
	var rows [][]string
	for _, a := range apps {
		if len(a.Instances) == 0 {
			rows = append(rows, []string{a.Name, "-", string(a.Kind), "-", "-", "-", "-", string(a.State), "-", "-", "-", "-"})
			continue
		}
		for _, in := range a.Instances {
			uptime, pid := "-", "-"
			if in.State == clientsdk.StateRunning && !in.StartedAt.IsZero() {
				uptime = humanDuration(time.Since(in.StartedAt))
			}
			if in.PID > 0 {
				pid = strconv.Itoa(in.PID)
			}
			mem := "-"
			if in.MemoryBytes > 0 {
				mem = humanBytes(in.MemoryBytes)
			}
			ready, addr := "-", "-"
			if a.Kind == clientsdk.KindDaemon && in.State == clientsdk.StateRunning {
				ready = map[bool]string{true: "yes", false: "no"}[in.Ready]
			}
			if in.Address != "" {
				addr = in.Address
			}
			rows = append(rows, []string{a.Name, strconv.Itoa(in.Instance), string(a.Kind), in.Node, pid, uptime,
				strconv.Itoa(in.Restarts), string(in.State), ready, addr, fmt.Sprintf("%.1f%%", in.CPUPercent), mem})
		}
	}
	return table(w, []string{"name", "instance", "kind", "node", "pid", "uptime", "restarts", "state", "ready", "address", "cpu", "mem"}, rows)
}

// onlyNamed keeps the apps named in names (all when none is named); a name
// no app has is an error.
func onlyNamed(apps []clientsdk.AppSummary, names []string) ([]clientsdk.AppSummary, error) {
	if len(names) == 0 {
		return apps, nil
	}
	byName := map[string]clientsdk.AppSummary{}
	for _, a := range apps {
		byName[a.Name] = a
	}
	out := make([]clientsdk.AppSummary, 0, len(names))
	for _, n := range names {
		a, ok := byName[n]
		if !ok {
			return nil, clientsdk.Errorf(404, "NotFound", "no app named %s (dartup list shows them all)", n)
		}
		out = append(out, a)
	}
	return out, nil
}
