package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

type schedulesFlags struct {
	conn connFlags
	json bool
}

func newSchedulesCmd() *cobra.Command {
	f := &schedulesFlags{}
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "List the lambdas' schedules with their next fire time",
		Long: `List every lambda's schedules (push --schedule): the expression, its time
zone, whether it is active or paused (its lambda is killed; 'dartup start'
resumes it), when it fires next and when it last fired. Each tick fires once
per cluster and runs the lambda as an async invocation. A schedule shown
pending is in the spec but not (yet) in the schedules stream: the servers
write it within moments.`,
		Example: `  dartup schedules
  APP     #  SCHEDULE           TIME ZONE      STATE   NEXT                          LAST
  report  0  0 0 9 * * MON-FRI  Europe/Berlin  active  2026-12-02 08:00:00 (in 15h)  2026-12-01 08:00:00
  tick    0  @every 30s         -              paused  -                             2026-12-01 16:40:30
  dartup schedules --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				infos, err := c.Schedules(ctx)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), infos)
				}
				return printSchedules(cmd.OutOrStdout(), infos, time.Now())
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return cmd
}

// printSchedules writes the schedules as a table, times in the local zone.
func printSchedules(w io.Writer, infos []clientsdk.ScheduleInfo, now time.Time) error {
	if len(infos) == 0 {
		_, err := fmt.Fprintln(w, "No schedules: push a lambda with --schedule '@every 5m' or --schedule '0 0 9 * * *'.")
		return err
	}
	rows := make([][]string, 0, len(infos))
	for _, in := range infos {
		rows = append(rows, []string{in.App, strconv.Itoa(in.Index), in.Schedule, orDash(in.TimeZone), string(in.State),
			whenText(in.Next, now), whenText(in.Last, now)})
	}
	return table(w, []string{"app", "#", "schedule", "time zone", "state", "next", "last"}, rows)
}

// printAppSchedules writes a lambda's schedules for `info NAME`.
func printAppSchedules(w io.Writer, infos []clientsdk.ScheduleInfo, now time.Time) {
	if len(infos) == 0 {
		return
	}
	fmt.Fprintln(w, "  schedules:")
	for _, in := range infos {
		zone := ""
		if in.TimeZone != "" {
			zone = " (" + in.TimeZone + ")"
		}
		line := fmt.Sprintf("    #%d %s%s  %s", in.Index, in.Schedule, zone, in.State)
		if !in.Next.IsZero() {
			line += "  next " + whenText(in.Next, now)
		}
		if !in.Last.IsZero() {
			line += "  last " + whenText(in.Last, now)
		}
		fmt.Fprintln(w, printable(line))
	}
}

// whenText is t in the local zone, with how far ahead it is; "-" for none.
func whenText(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	s := t.Local().Format(time.DateTime)
	if d := t.Sub(now); d > 0 {
		s += " (in " + humanDuration(d) + ")"
	}
	return s
}

// addSchedules puts push --schedule and --schedule-tz into a lambda's spec:
// the zone applies to this push's cron expressions, not to "@every".
func (f *pushFlags) addSchedules(s *clientsdk.AppSpec) error {
	if len(f.schedules) == 0 {
		if f.scheduleTZ != "" {
			return usageErr(errors.New("--schedule-tz needs a --schedule (a cron expression) to apply to"))
		}
		return nil
	}
	if s.Lambda == nil {
		return usageErr(errors.New("--schedule is for lambdas (push --lambda); a daemon runs all the time"))
	}
	for _, c := range f.schedules {
		sc := clientsdk.Schedule{Cron: c}
		if !strings.HasPrefix(c, "@every") {
			sc.TimeZone = f.scheduleTZ
		}
		if msg := sc.Check(); msg != "" {
			zone := ""
			if sc.TimeZone != "" {
				zone = fmt.Sprintf(" with --schedule-tz %q", sc.TimeZone)
			}
			return usageErr(fmt.Errorf("--schedule %q%s: allowed %s", c, zone, msg))
		}
		s.Lambda.Schedules = append(s.Lambda.Schedules, sc)
	}
	return nil
}
