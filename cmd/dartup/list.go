package main

import (
	"context"
	"fmt"
	"io"
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
		Use:     "list",
		Aliases: []string{"ls", "status"},
		Short:   "List the apps and their state",
		Example: `  dartup list
   • hello - dead
   • web - alive - 4/4 running
  dartup list --wide      # one row per instance: node, pid, uptime, restarts, ready, address, cpu, mem
  dartup list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				apps, err := c.List(ctx)
				if err != nil {
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

// listLine is dart_up's list format: " • NAME - STATE - MESSAGE".
func listLine(a clientsdk.AppSummary) string {
	s := fmt.Sprintf(" • %s - %s", a.Name, a.State)
	if a.Message != "" {
		s += " - " + a.Message
	}
	return printable(s) // messages quote apps' errors: no control characters reach the terminal
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
