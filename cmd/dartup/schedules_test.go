package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// push --schedule and --schedule-tz store a lambda's schedules (the zone
// for its cron expressions, not for @every); `dartup schedules` and `info
// NAME` list them with their next fire time; kill pauses them; a schedule
// nats-server would refuse is refused by the server, and a malformed one,
// or one on a daemon, by the CLI.
func TestScheduleCommands(t *testing.T) {
	p := startServeLocal(t, testutil.TempDir(t), "--no-runner")
	env := []string{"DARTUP_URL=" + p.ready.NATSURL}
	if r := runCLI(t, "", env, "schedules"); r.code != 0 || !strings.Contains(r.stdout, "No schedules") {
		t.Fatalf("dartup schedules on an empty server: %+v", r)
	}
	r := runCLI(t, "", env, "push", "--lambda", "--name", "report", "--detach", "--schedule", "0 0 9 * * MON-FRI",
		"--schedule", "@every 1h", "--schedule-tz", "Europe/Berlin", "--runtime", "command", "--", "/bin/true")
	if r.code != 0 {
		t.Fatalf("push with schedules: %+v", r)
	}
	var infos []clientsdk.ScheduleInfo
	testutil.WaitFor(t, 10*time.Second, "both schedules active", func() bool {
		r = runCLI(t, "", env, "schedules", "--json")
		infos = nil
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &infos) == nil && len(infos) == 2 &&
			infos[0].State == clientsdk.ScheduleActive && infos[1].State == clientsdk.ScheduleActive
	})
	now := time.Now()
	if infos[0].Schedule != "0 0 9 * * MON-FRI" || infos[0].TimeZone != "Europe/Berlin" || infos[1].Schedule != "@every 1h" || infos[1].TimeZone != "" {
		t.Errorf("schedules %+v; want the cron one in Europe/Berlin, @every without a zone", infos)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if n := infos[0].Next.In(berlin); n.Hour() != 9 || n.Minute() != 0 || n.Weekday() == time.Saturday || n.Weekday() == time.Sunday || !n.After(now) {
		t.Errorf("next of 0 0 9 * * MON-FRI is %s; want a weekday 09:00 Berlin time ahead", n)
	}
	// nats-server rounds the stored time to the second before adding the
	// period: the next fire may be up to half a second over an hour away.
	if d := infos[1].Next.Sub(now); d <= 0 || d > time.Hour+time.Second {
		t.Errorf("next of @every 1h is in %s", d)
	}

	r = runCLI(t, "", env, "schedules")
	t.Logf("dartup schedules:\n%s", r.stdout)
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(rows) != 3 || strings.Join(strings.Fields(rows[0]), " ") != "APP # SCHEDULE TIME ZONE STATE NEXT LAST" ||
		!strings.HasPrefix(strings.Join(strings.Fields(rows[1]), " "), "report 0 0 0 9 * * MON-FRI Europe/Berlin active ") ||
		!strings.Contains(rows[2], "(in ") {
		t.Errorf("dartup schedules:\n%s", r.stdout)
	}
	r = runCLI(t, "", env, "info", "report")
	if r.code != 0 || !strings.Contains(r.stdout, "  schedules:\n    #0 0 0 9 * * MON-FRI (Europe/Berlin)  active  next ") ||
		!strings.Contains(r.stdout, "    #1 @every 1h  active  next ") {
		t.Errorf("dartup info report:\n%s", r.stdout)
	}

	if r := runCLI(t, "", env, "kill", "report"); r.code != 0 {
		t.Fatalf("kill: %+v", r)
	}
	r, infos = runCLI(t, "", env, "schedules", "--json"), nil
	if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil || len(infos) != 2 || infos[0].State != clientsdk.SchedulePaused || !infos[0].Next.IsZero() {
		t.Errorf("schedules of a killed lambda: %s", r.stdout)
	}

	// The server refuses what nats-server would; the CLI what is malformed.
	r = runCLI(t, "", env, "push", "--lambda", "--name", "bad", "--detach", "--schedule", "0 0 0 31 2 *", "--runtime", "command", "--", "/bin/true")
	if r.code != 1 || !strings.Contains(r.stderr, "lambda.schedules[0] (--schedule)") || !strings.Contains(r.stderr, "five years") {
		t.Errorf("push of a schedule that never fires: %+v", r)
	}
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--lambda", "--schedule", "@every 100ms"}, "at least 1s"},
		{[]string{"--lambda", "--schedule", "*/5 * * * *"}, "6 cron fields"},
		{[]string{"--lambda", "--schedule", "0 0 9 * * *", "--schedule-tz", "Mars/Olympus"}, "IANA time zone"},
		{[]string{"--lambda", "--schedule-tz", "Europe/Berlin"}, "--schedule-tz needs a --schedule"},
		{[]string{"--schedule", "@daily"}, "--schedule is for lambdas"},
	} {
		args := append([]string{"push", "--name", "bad", "--detach"}, c.flags...)
		r := runCLI(t, "", env, append(args, "--runtime", "command", "--", "/bin/true")...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("push %s: exit %d, %q; want 2 and %q", strings.Join(c.flags, " "), r.code, r.stderr, c.want)
		}
	}
}
