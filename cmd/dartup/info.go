package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

type infoFlags struct {
	conn    connFlags
	json    bool
	showEnv bool
}

func newInfoCmd() *cobra.Command {
	f := &infoFlags{}
	cmd := &cobra.Command{
		Use:   "info [NAME]",
		Short: "Show facts about the server, or about app NAME",
		Example: `  dartup info            # server version, node, data dir, uptime, JetStream usage
  dartup info hello      # spec, versions, instances and recent events of app hello
  dartup info --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				w := cmd.OutOrStdout()
				if len(args) == 1 {
					ai, err := c.Describe(ctx, args[0])
					if err != nil {
						return err
					}
					if f.json {
						return printJSON(w, ai)
					}
					return printAppInfo(w, ai, f.showEnv)
				}
				si, err := c.Info(ctx)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(w, si)
				}
				return printServerInfo(w, si)
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	cmd.Flags().BoolVar(&f.showEnv, "show-env", false, "print the app's environment values too (they may hold secrets)")
	return cmd
}

func printServerInfo(w io.Writer, si *clientsdk.ServerInfo) error {
	rows := [][2]string{
		{"dartup", si.Version},
		{"NATS server", si.ServerVersion},
		{"server name", si.ServerName},
		{"node id", si.NodeID},
		{"data dir", si.DataDir},
		{"uptime", si.Uptime.D().Round(time.Second).String()},
		{"NATS", si.NATSURL},
		{"HTTP", orNone(si.HTTPURL)},
		{"require password", fmt.Sprint(si.RequireAuth)},
		{"apps", fmt.Sprint(si.Apps)},
		{"JetStream storage", storageText(si)},
		{"JetStream memory", humanBytes(si.JetStream.Memory)},
		{"JetStream streams", fmt.Sprint(si.JetStream.Streams)},
	}
	if d := si.Disk; d != nil {
		if d.Free >= 0 {
			rows = append(rows, [2]string{"data disk", fmt.Sprintf("%s free of %s (%s held in reserve)", humanBytes(uint64(d.Free)), humanBytes(uint64(d.Total)), humanBytes(uint64(d.Reserve)))})
		}
		if d.WriteError != "" {
			rows = append(rows, [2]string{"store cannot write", printable(d.WriteError)})
		}
	}
	if len(si.Cluster) > 0 {
		rows = append(rows, [2]string{"cluster routes", strings.Join(si.Cluster, ", ")})
		leader := si.JetStreamLeader
		if leader == "" {
			leader = "(none: the cluster is electing one)"
		}
		rows = append(rows, [2]string{"JetStream leader", leader})
	}
	for _, d := range si.StoreDamage {
		rows = append(rows, [2]string{"STORE DAMAGE", printable(d)})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-18s %s\n", r[0]+":", r[1])
	}
	return nil
}

func printAppInfo(w io.Writer, ai *clientsdk.AppInfo, showEnv bool) error {
	s := ai.Spec
	fmt.Fprintln(w, listLine(ai.Summary))
	by := ""
	if s.PushedBy != "" {
		by = " by " + printable(s.PushedBy)
	}
	fmt.Fprintf(w, "  kind: %s  runtime: %s  version: %d  pushed: %s%s\n", s.Kind, s.Runtime, s.Version, s.PushedAt.Local().Format(time.DateTime), by)
	printHowItRuns(w, s, showEnv)
	if s.Kind == clientsdk.KindDaemon {
		r := s.Restart
		fmt.Fprintf(w, "  instances: %d  auto-restart: %v  max-restarts: %d  min-uptime: %s  restart-delay: %s  kill-timeout: %s\n",
			s.Instances, !r.NoAutoRestart, r.MaxRestarts, r.MinUptime.D(), r.RestartDelay.D(), r.KillTimeout.D())
		if len(r.StopExitCodes) > 0 {
			fmt.Fprintf(w, "  stop-exit-codes: %v (exits that are not restarted)\n", r.StopExitCodes)
		}
		printServing(w, s)
	}
	if l := s.Lambda; l != nil {
		fmt.Fprintf(w, "  protocol: %s  keep-warm: %s  max-workers: %d  queue: %d  timeout: %s  memory: %d MB  http-event: %s\n",
			l.Protocol, keepWarm(l), l.MaxWorkers, l.Queue, l.Timeout.D(), l.MemoryMB, l.HTTPEvent)
		printAppSchedules(w, ai.Schedules, time.Now())
		printAsync(w, s.Name, l.Async, ai.Async)
	}
	if s.Kind == clientsdk.KindLambda {
		printLambdaStats(w, ai.Summary.Instances)
	} else {
		printInstances(w, ai.Summary.Instances)
	}
	printVersions(w, ai.Versions)
	printEvents(w, ai.Events)
	return nil
}

// printHowItRuns prints what the app runs: artifact or command (quoted as a
// shell would take it), interpreter, arguments, working directory, the
// environment's names (values only with showEnv) and where it may run.
func printHowItRuns(w io.Writer, s clientsdk.AppSpec, showEnv bool) {
	if s.Artifact != nil {
		fmt.Fprintf(w, "  artifact: %s (%s, sha256 %s)\n", printable(s.Artifact.FileName), humanBytes(uint64(s.Artifact.Size)), shortDigest(s.Artifact.SHA256))
	}
	if s.Bundle != nil {
		fmt.Fprintf(w, "  entry: %s (run in the folder)\n", printable(s.Bundle.Entry))
	}
	if len(s.Command) > 0 {
		fmt.Fprintf(w, "  command: %s\n", printable(shellJoin(s.Command)))
	}
	if s.Interpreter != "" {
		fmt.Fprintf(w, "  interpreter: %s\n", printable(s.Interpreter))
	}
	if len(s.Args) > 0 {
		fmt.Fprintf(w, "  args: %s\n", printable(shellJoin(s.Args)))
	}
	if s.Cwd != "" {
		fmt.Fprintf(w, "  cwd: %s\n", printable(s.Cwd))
	}
	if len(s.Env) > 0 {
		var env []string
		for _, k := range slices.Sorted(maps.Keys(s.Env)) {
			if showEnv {
				env = append(env, shellJoin([]string{k + "=" + s.Env[k]}))
			} else {
				env = append(env, k)
			}
		}
		hint := ""
		if !showEnv {
			hint = "  (values with --show-env)"
		}
		fmt.Fprintf(w, "  env: %s%s\n", printable(strings.Join(env, " ")), hint)
	}
	if len(s.Constraints) > 0 {
		var cs []string
		for _, k := range slices.Sorted(maps.Keys(s.Constraints)) {
			cs = append(cs, k+"="+s.Constraints[k])
		}
		fmt.Fprintf(w, "  constraints: %s\n", printable(strings.Join(cs, " ")))
	}
}

// printServing prints a daemon's ports, routes, readiness and health check.
func printServing(w io.Writer, s clientsdk.AppSpec) {
	var parts []string
	switch {
	case s.Port > 0 && s.Instances > 1:
		parts = append(parts, fmt.Sprintf("ports: %d-%d", s.Port, s.Port+s.Instances-1))
	case s.Port > 0:
		parts = append(parts, fmt.Sprintf("port: %d", s.Port))
	}
	if len(s.HTTP) > 0 {
		var rs []string
		for _, r := range s.HTTP {
			rs = append(rs, r.String())
		}
		strip := ""
		if s.HTTPStripPrefix {
			strip = " (prefix stripped)"
		}
		parts = append(parts, "http: "+strings.Join(rs, " ")+strip)
	}
	if s.Ready != "" && s.Ready != "none" {
		parts = append(parts, fmt.Sprintf("ready: %s within %s", s.Ready, s.ReadyTimeout.D()))
	}
	if s.Health != "" {
		parts = append(parts, fmt.Sprintf("health: %s every %s, %d failures", s.Health, s.HealthInterval.D(), s.HealthFailures))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "  %s\n", printable(strings.Join(parts, "  ")))
	}
}

// printInstances prints a daemon's instances.
func printInstances(w io.Writer, st []clientsdk.InstanceStatus) {
	if len(st) == 0 {
		return
	}
	fmt.Fprintln(w, "  instances:")
	for _, in := range st {
		line := fmt.Sprintf("    #%d %s on %s pid %d restarts %d", in.Instance, in.State, in.Node, in.PID, in.Restarts)
		if in.Address != "" {
			line += " at " + in.Address
		}
		if in.LastError != "" {
			line += " — " + in.LastError
		}
		fmt.Fprintln(w, printable(line))
	}
}

// printVersions prints the kept versions, newest first.
func printVersions(w io.Writer, vs []clientsdk.AppVersion) {
	if len(vs) == 0 {
		return
	}
	fmt.Fprint(w, "  versions kept:")
	for i, v := range vs {
		if i == 5 {
			fmt.Fprint(w, " …")
			break
		}
		fmt.Fprintf(w, " v%d", v.Version)
	}
	fmt.Fprintln(w, " (dartup history to see them, dartup rollback to go back)")
}

// printEvents prints recent events; app-level ones have no instance number.
func printEvents(w io.Writer, es []clientsdk.Event) {
	if len(es) == 0 {
		return
	}
	fmt.Fprintln(w, "  recent events:")
	for _, e := range es {
		who := ""
		if e.Instance >= 0 {
			who = fmt.Sprintf("#%d ", e.Instance)
		}
		fmt.Fprintf(w, "    %s %-10s %s%s\n", e.Time.Local().Format("15:04:05.000"), e.Kind, who, printable(e.Message))
	}
}

// shortDigest returns the first 12 characters of a hex digest, or all of a
// shorter one (a spec read from the store is not trusted to be well-formed).
func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

func keepWarm(l *clientsdk.LambdaSpec) string {
	if l.KeepWarm == nil {
		return "default"
	}
	return l.KeepWarm.D().String()
}

// printLambdaStats prints a lambda's warm workers and invocation stats per
// node and in total.
func printLambdaStats(w io.Writer, st []clientsdk.InstanceStatus) {
	if len(st) == 0 {
		fmt.Fprintln(w, "  no node hosts it yet")
		return
	}
	line := func(who string, warm int, l clientsdk.LambdaStats) {
		fmt.Fprintf(w, "    %-12s %d warm  %d invocations  %d errors  %d cold starts  %d throttled  %d timeouts  p50 %s  p99 %s\n",
			who, warm, l.Invocations, l.Errors, l.ColdStarts, l.Throttled, l.Timeouts, l.P50.D().Round(time.Microsecond), l.P99.D().Round(time.Microsecond))
	}
	fmt.Fprintln(w, "  nodes:")
	for _, in := range st {
		if in.State == clientsdk.StateErrored {
			fmt.Fprintf(w, "    %-12s errored: %s\n", in.Node, printable(in.LastError))
			continue
		}
		var l clientsdk.LambdaStats
		if in.Lambda != nil {
			l = *in.Lambda
		}
		line(in.Node, in.WarmWorkers, l)
	}
	for app, t := range clientsdk.AggregateLambdaStats(st) {
		_ = app
		if t.Nodes > 1 {
			line("total", t.WarmWorkers, t.LambdaStats)
		}
	}
}

// storageText is what the store holds and, when the server says, its limit.
func storageText(si *clientsdk.ServerInfo) string {
	s := humanBytes(si.JetStream.Storage)
	if si.Disk != nil && si.Disk.StoreMax > 0 {
		s += " of " + humanBytes(uint64(si.Disk.StoreMax)) + " (--max-store)"
	}
	return s
}
