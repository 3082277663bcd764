package broker

import (
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

func TestParseTimetable(t *testing.T) {
	now := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC) // a Saturday, the eve of Europe's DST change
	for _, tc := range []struct {
		cron, tz string
		next     time.Time // zero: refused
	}{
		{"@every 1s", "", now.Add(time.Second)},
		{"@every 90m", "", now.Add(90 * time.Minute)},
		{"@every 1500ms", "", now.Add(1500 * time.Millisecond)},
		{"@hourly", "", now.Add(time.Hour)},
		{"@daily", "", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
		{"@midnight", "", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
		{"@weekly", "", time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)}, // Sunday
		{"@monthly", "", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"@yearly", "", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"@annually", "", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"0 */5 * * * *", "", now.Add(5 * time.Minute)},
		{"30 15 10 * * MON-FRI", "", time.Date(2026, 3, 30, 10, 15, 30, 0, time.UTC)},
		{"0 0 9 ? jan,MAR *", "", time.Date(2026, 3, 29, 9, 0, 0, 0, time.UTC)},
		{"0 0 9 * * *", "Europe/Berlin", time.Date(2026, 3, 29, 7, 0, 0, 0, time.UTC)},   // CEST from 29 March
		{"0 30 2 * * *", "Europe/Berlin", time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC)}, // 02:30 does not exist on the 29th
		{"0 0 0 29 2 *", "", time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		// Refused, as nats-server refuses them.
		{"@every 500ms", "", time.Time{}},
		{"@every 0s", "", time.Time{}},
		{"@every -5s", "", time.Time{}},
		{"@every 1m", "Europe/Berlin", time.Time{}},
		{"@every", "", time.Time{}},
		{"@every  1s", "", time.Time{}},
		{"@reboot", "", time.Time{}},
		{"@at 2030-01-01T00:00:00Z", "", time.Time{}},
		{"*/5 * * * *", "", time.Time{}}, // 5 fields
		{"0 0 0 * * * 2026", "", time.Time{}},
		{"60 * * * * *", "", time.Time{}},
		{"* 60 * * * *", "", time.Time{}},
		{"* * 24 * * *", "", time.Time{}},
		{"* * * 0 * *", "", time.Time{}},
		{"* * * 32 * *", "", time.Time{}},
		{"* * * * 13 *", "", time.Time{}},
		{"* * * * * 7", "", time.Time{}},
		{"*/0 * * * * *", "", time.Time{}},
		{"5-1 * * * * *", "", time.Time{}},
		{"1-2-3 * * * * *", "", time.Time{}},
		{"0 0 0 L * *", "", time.Time{}},
		{"0 0 0 * * 1#2", "", time.Time{}},
		{"0 0 0 31 2 *", "", time.Time{}},
		{"TZ=UTC 0 0 0 * * *", "", time.Time{}},
		{"0 0 9 * * *", "Mars/Olympus", time.Time{}},
		{"0 0 9 * * *", "Local", time.Time{}},
		{" 0 0 9 * * *", "", time.Time{}},
		{"", "", time.Time{}},
	} {
		t.Run(tc.cron+" "+tc.tz, func(t *testing.T) {
			tt, err := parseTimetable(clientsdk.Schedule{Cron: tc.cron, TimeZone: tc.tz}, now)
			if tc.next.IsZero() {
				if err == nil {
					t.Fatalf("accepted; nats-server refuses it")
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got := tt.next(now, now); !got.Equal(tc.next) {
				t.Errorf("next = %s, want %s", got, tc.next)
			}
		})
	}
}

// An @every schedule fires on the grid laid from its message's time,
// rounded to the second, as nats-server's parseMsgSchedule does.
func TestTimetableEveryGrid(t *testing.T) {
	tt := timetable{every: 10 * time.Second}
	stored := time.Date(2026, 1, 1, 0, 0, 0, 600e6, time.UTC) // rounds to :01
	at := func(s float64) time.Time {
		return stored.Truncate(time.Second).Add(time.Duration(s * float64(time.Second)))
	}
	for _, tc := range []struct {
		now, want time.Time
	}{
		{stored, at(11)},
		{at(5), at(11)},
		{at(10.999), at(11)},
		{at(11), at(21)},
		{at(95), at(101)},
		{at(-3), at(11)}, // a server clock behind the store's
	} {
		if got := tt.next(stored, tc.now); !got.Equal(tc.want) {
			t.Errorf("next(now %s) = %s, want %s", tc.now.Format("05.000"), got.Format("05.000"), tc.want.Format("05.000"))
		}
	}
	// A tick's Nats-Schedule-Next wins while it is ahead (a late tick moved
	// the grid); once passed, the grid.
	now := at(30)
	if got := nextFire(tt, stored, at(33), now); !got.Equal(at(33)) {
		t.Errorf("nextFire with the tick's next ahead = %s, want %s", got, at(33))
	}
	if got := nextFire(tt, stored, at(29), now); !got.Equal(at(31)) {
		t.Errorf("nextFire with the tick's next passed = %s, want %s", got, at(31))
	}
}

func TestCheckSchedules(t *testing.T) {
	now := time.Now()
	lambda := func(ss ...clientsdk.Schedule) clientsdk.AppSpec {
		return clientsdk.AppSpec{Name: "tick", Kind: clientsdk.KindLambda, Lambda: &clientsdk.LambdaSpec{Schedules: ss}}
	}
	if err := checkSchedules(lambda(clientsdk.Schedule{Cron: "@every 1s"}, clientsdk.Schedule{Cron: "0 0 9 * * MON", TimeZone: "Europe/Berlin"}), now); err != nil {
		t.Errorf("valid schedules refused: %v", err)
	}
	if err := checkSchedules(clientsdk.AppSpec{Name: "web", Kind: clientsdk.KindDaemon}, now); err != nil {
		t.Errorf("a daemon: %v", err)
	}
	err := checkSchedules(lambda(clientsdk.Schedule{Cron: "@every 1s"}, clientsdk.Schedule{Cron: "61 * * * * *"}), now)
	e, ok := clientsdk.AsError(err)
	if !ok || e.Code != 400 || e.Type != clientsdk.TypeInvalidSpec || !strings.Contains(e.Message, "lambda.schedules[1]") || !strings.Contains(e.Message, "61 * * * * *") {
		t.Errorf("an out-of-range second: %v; want 400 InvalidSpec naming lambda.schedules[1]", err)
	}
}
