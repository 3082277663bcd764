package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// schedRig is a broker with a client and the schedules stream. There is no
// runner: nothing consumes the async invocations the ticks become.
type schedRig struct {
	t  *testing.T
	c  *clientsdk.Client
	nc *nats.Conn
	js jetstream.JetStream
	st jetstream.Stream
}

func newSchedRig(t *testing.T) *schedRig {
	t.Helper()
	return schedRigOn(t, testutil.StartBroker(t))
}

// schedRigOn is a schedRig on broker b.
func schedRigOn(t *testing.T, b *broker.Broker) *schedRig {
	t.Helper()
	nc := testutil.Connect(t, b.NATSURL())
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithConn(nc))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), clientsdk.SchedulesStream)
	if err != nil {
		t.Fatal(err)
	}
	return &schedRig{t: t, c: c, nc: nc, js: js, st: st}
}

// push stores lambda name (a command no runner runs) with schedules.
func (r *schedRig) push(name string, stopped bool, ss ...clientsdk.Schedule) {
	r.t.Helper()
	spec := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand,
		Command: []string{"/bin/true"}, Lambda: &clientsdk.LambdaSpec{Schedules: ss}}
	if _, err := r.c.Push(context.Background(), spec, "", nil); err != nil {
		r.t.Fatalf("push %s: %v", name, err)
	}
	if stopped {
		if _, err := r.c.Kill(context.Background(), name); err != nil {
			r.t.Fatal(err)
		}
	}
}

// last returns the last message on subj in stream st, or nil.
func last(t *testing.T, st jetstream.Stream, subj string) *jetstream.RawStreamMsg {
	t.Helper()
	m, err := st.GetLastMsgForSubject(context.Background(), subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("get the last message on %s: %v", subj, err)
	}
	return m
}

// waitSchedule waits until subject subj holds a schedule message with
// pattern cron ("" waits until it holds none) and returns it.
func (r *schedRig) waitSchedule(subj, cron string) *jetstream.RawStreamMsg {
	r.t.Helper()
	var m *jetstream.RawStreamMsg
	testutil.WaitFor(r.t, 10*time.Second, fmt.Sprintf("%s to hold schedule %q", subj, cron), func() bool {
		m = last(r.t, r.st, subj)
		if cron == "" {
			return m == nil
		}
		return m != nil && m.Header.Get(jetstream.ScheduleHeader) == cron
	})
	return m
}

// subjectCount is how many messages subj holds in the stream.
func (r *schedRig) subjectCount(subj string) uint64 {
	r.t.Helper()
	info, err := r.st.Info(context.Background(), jetstream.WithSubjectFilter(subj))
	if err != nil {
		r.t.Fatal(err)
	}
	return info.State.Subjects[subj]
}

// A lambda's "@every 1s" schedule fires once a second onto dartup.ticks.NAME,
// each tick an EventBridge-like event naming the schedule, and the ticks
// become async invocations on dartup.async.NAME; `schedules` lists it with
// its next fire time; removing the lambda purges its schedule and its ticks.
func TestScheduleTicksBecomeAsyncInvocations(t *testing.T) {
	t.Parallel()
	r := newSchedRig(t)
	r.push("tick", false, clientsdk.Schedule{Cron: "@every 1s"})
	testutil.WaitFor(t, 15*time.Second, "4 ticks", func() bool { return r.subjectCount(clientsdk.TickSubject("tick")) >= 4 })

	var nexts []time.Time
	var stamps []time.Time
	for _, m := range fetchAll(t, r.js, clientsdk.SchedulesStream, clientsdk.TickSubject("tick")) {
		h := m.Headers()
		if got := h.Get(jetstream.SchedulerHeader); got != "dartup.schedules.tick.0" {
			t.Errorf("tick's %s = %q", jetstream.SchedulerHeader, got)
		}
		next, err := time.Parse(time.RFC3339Nano, h.Get(jetstream.ScheduleNextHeader))
		if err != nil {
			t.Fatalf("tick's %s: %v", jetstream.ScheduleNextHeader, err)
		}
		md, _ := m.Metadata()
		nexts, stamps = append(nexts, next), append(stamps, md.Timestamp)
		var e clientsdk.ScheduledEvent
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			t.Fatalf("tick body: %v: %s", err, m.Data())
		}
		if e.Source != "dartup.scheduler" || e.DetailType != "Scheduled Event" || e.Version != "0" ||
			!slices.Equal(e.Resources, []string{"dartup.schedules.tick.0"}) || e.Detail.Schedule != "@every 1s" {
			t.Errorf("tick event %+v", e)
		}
	}
	for i := 1; i < len(nexts); i++ {
		if d := nexts[i].Sub(nexts[i-1]); d != time.Second {
			t.Errorf("tick %d: next fire %s after the one before; want 1s (%v)", i, d, nexts)
		}
		if d := stamps[i].Sub(stamps[i-1]); d < 500*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("tick %d came %s after the one before; want about 1s", i, d)
		}
	}

	// The async stream sourced the ticks as invocations of the lambda.
	async, err := r.js.Stream(context.Background(), clientsdk.AsyncStream)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "a tick on dartup.async.tick", func() bool {
		m := last(t, async, clientsdk.AsyncSubject("tick"))
		return m != nil && m.Header.Get(jetstream.SchedulerHeader) == "dartup.schedules.tick.0"
	})

	infos, err := r.c.Schedules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if len(infos) != 1 || infos[0].App != "tick" || infos[0].State != clientsdk.ScheduleActive ||
		!infos[0].Next.After(now.Add(-100*time.Millisecond)) || infos[0].Next.After(now.Add(1100*time.Millisecond)) ||
		infos[0].Last.IsZero() || infos[0].Last.After(now) {
		t.Errorf("schedules = %+v at %s; want tick active, next within a second, last before now", infos, now)
	}

	if err := r.c.Remove(context.Background(), "tick"); err != nil {
		t.Fatal(err)
	}
	r.waitSchedule("dartup.schedules.tick.0", "")
	testutil.WaitFor(t, 10*time.Second, "the ticks purged", func() bool { return r.subjectCount(clientsdk.TickSubject("tick")) == 0 })
}

// fetchAll reads every message on subject of stream with an ordered consumer.
func fetchAll(t *testing.T, js jetstream.JetStream, stream, subject string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

// The schedules stream follows the spec: kill pauses (the schedule's
// message goes), start resumes, a changed schedule replaces its message, a
// dropped one is purged; a pass that changes nothing writes nothing.
func TestScheduleFollowsTheSpec(t *testing.T) {
	t.Parallel()
	r := newSchedRig(t)
	ctx := context.Background()
	r.push("sched", false, clientsdk.Schedule{Cron: "@hourly"})
	m := r.waitSchedule("dartup.schedules.sched.0", "@hourly")
	if m.Header.Get(jetstream.ScheduleTargetHeader) != "dartup.ticks.sched" || m.Header.Get(jetstream.ScheduleTimeZoneHeader) != "" {
		t.Errorf("schedule headers %v", m.Header)
	}

	if _, err := r.c.Kill(ctx, "sched"); err != nil {
		t.Fatal(err)
	}
	r.waitSchedule("dartup.schedules.sched.0", "")
	infos, err := r.c.Schedules(ctx)
	if err != nil || len(infos) != 1 || infos[0].State != clientsdk.SchedulePaused || !infos[0].Next.IsZero() {
		t.Errorf("schedules of a killed lambda = %+v, %v; want paused, no next", infos, err)
	}
	if _, err := r.c.Start(ctx, "sched"); err != nil {
		t.Fatal(err)
	}
	r.waitSchedule("dartup.schedules.sched.0", "@hourly")

	r.push("sched", false, clientsdk.Schedule{Cron: "0 */5 * * * *", TimeZone: "Europe/Berlin"}, clientsdk.Schedule{Cron: "@every 1h"})
	m = r.waitSchedule("dartup.schedules.sched.0", "0 */5 * * * *")
	if m.Header.Get(jetstream.ScheduleTimeZoneHeader) != "Europe/Berlin" || r.subjectCount("dartup.schedules.sched.0") != 1 {
		t.Errorf("changed schedule: headers %v, %d messages on its subject; want Europe/Berlin, 1", m.Header, r.subjectCount("dartup.schedules.sched.0"))
	}
	kept := r.waitSchedule("dartup.schedules.sched.1", "@every 1h")

	// A spec written again with the same schedules (start does that) and
	// the passes after it leave the messages alone: sched.1's "@every 1h"
	// keeps its period. The marker's schedule shows that a pass ran.
	if _, err := r.c.Start(ctx, "sched"); err != nil {
		t.Fatal(err)
	}
	r.push("marker", false, clientsdk.Schedule{Cron: "@daily"})
	r.waitSchedule("dartup.schedules.marker.0", "@daily")
	if again := last(t, r.st, "dartup.schedules.sched.1"); again.Sequence != kept.Sequence {
		t.Errorf("an unchanged schedule was written again: sequence %d → %d", kept.Sequence, again.Sequence)
	}

	ai, err := r.c.Describe(ctx, "sched")
	if err != nil {
		t.Fatal(err)
	}
	if len(ai.Schedules) != 2 || ai.Schedules[1].State != clientsdk.ScheduleActive ||
		!ai.Schedules[1].Next.Equal(kept.Time.UTC().Round(time.Second).Add(time.Hour)) {
		t.Errorf("info's schedules %+v; want 2, the second next at %s", ai.Schedules, kept.Time.Round(time.Second).Add(time.Hour))
	}

	r.push("sched", false, clientsdk.Schedule{Cron: "0 */5 * * * *", TimeZone: "Europe/Berlin"})
	r.waitSchedule("dartup.schedules.sched.1", "")
	r.push("sched", false)
	r.waitSchedule("dartup.schedules.sched.0", "")
}

// A schedule nats-server would refuse is refused at push (400
// InvalidSpec), before anything is stored; the server agrees with
// nats-server's own verdict on each expression (published on a stream of
// its own here).
func TestScheduleRefusedAtPushAsNATSWould(t *testing.T) {
	t.Parallel()
	r := newSchedRig(t)
	ctx := context.Background()
	if _, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: "CRONCHECK", Subjects: []string{"croncheck.>"},
		AllowMsgSchedules: true, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ cron, tz string }{
		{"@every 1s", ""}, {"@every 2m30s", ""}, {"@hourly", ""}, {"@weekly", ""}, {"@yearly", ""},
		{"0 */5 * * * *", ""}, {"0 0 9 * * MON-FRI", "Europe/Berlin"}, {"0 0 9 ? jan,Jul *", ""}, {"0 0 0 29 2 *", "America/New_York"},
		{"@every 999ms", ""}, {"@every 1m", "UTC"}, {"@reboot", ""}, {"*/5 * * * *", ""}, {"60 * * * * *", ""},
		{"* * * * * 7", ""}, {"*/0 * * * * *", ""}, {"0 0 0 L * *", ""}, {"0 0 0 * * 1#2", ""}, {"0 0 0 31 2 *", ""},
		{"5-1 * * * * *", ""}, {"0 0 9 * * *", "Mars/Olympus"},
	} {
		t.Run(tc.cron+" "+tc.tz, func(t *testing.T) {
			msg := nats.NewMsg(fmt.Sprintf("croncheck.s%d", i))
			msg.Header.Set(jetstream.ScheduleHeader, tc.cron)
			msg.Header.Set(jetstream.ScheduleTargetHeader, "croncheck.target")
			if tc.tz != "" {
				msg.Header.Set(jetstream.ScheduleTimeZoneHeader, tc.tz)
			}
			_, natsErr := r.js.PublishMsg(ctx, msg)
			var apiErr *jetstream.APIError
			if natsErr != nil && !errors.As(natsErr, &apiErr) {
				t.Fatalf("publish: %v", natsErr)
			}
			name := fmt.Sprintf("cron%d", i)
			body, _ := json.Marshal(clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand,
				Command: []string{"/bin/true"}, Lambda: &clientsdk.LambdaSpec{Schedules: []clientsdk.Schedule{{Cron: tc.cron, TimeZone: tc.tz}}}})
			e := rawRequest(t, r.nc, clientsdk.APISubject(clientsdk.VerbPush), body)
			switch {
			case natsErr == nil && e != nil:
				t.Errorf("nats-server takes it; push refused it: %v", e)
			case natsErr != nil && e == nil:
				t.Errorf("nats-server refuses it (%v); push took it", natsErr)
			case e != nil && (e.Code != 400 || e.Type != clientsdk.TypeInvalidSpec):
				t.Errorf("push: %v; want 400 %s", e, clientsdk.TypeInvalidSpec)
			case e != nil:
				if _, err := r.c.Describe(ctx, name); !errors.Is(err, clientsdk.ErrNotFound) {
					t.Errorf("a refused push stored the app: describe = %v", err)
				}
			}
		})
	}
}

// A server restarted on its data keeps firing the schedule it held, and
// does not write it again (which would restart its period).
func TestScheduleSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := testutil.TempDir(t)
	onDir := func(c *broker.Config) { c.DataDir = dir }
	b := testutil.StartBroker(t, onDir)
	r := schedRigOn(t, b)
	r.push("beat", false, clientsdk.Schedule{Cron: "@every 1s"})
	stored := r.waitSchedule("dartup.schedules.beat.0", "@every 1s")
	testutil.WaitFor(t, 10*time.Second, "2 ticks", func() bool { return r.subjectCount(clientsdk.TickSubject("beat")) >= 2 })
	r.nc.Close()
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := time.Now()

	r = schedRigOn(t, testutil.StartBroker(t, onDir))
	testutil.WaitFor(t, 10*time.Second, "ticks again after the restart", func() bool {
		m := last(t, r.st, clientsdk.TickSubject("beat"))
		return m != nil && m.Time.After(before.Add(time.Second))
	})
	if again := last(t, r.st, "dartup.schedules.beat.0"); again == nil || again.Sequence != stored.Sequence {
		t.Errorf("the schedule after the restart: %+v; want it untouched at sequence %d", again, stored.Sequence)
	}
	seen := map[string]bool{}
	for _, m := range fetchAll(t, r.js, clientsdk.SchedulesStream, clientsdk.TickSubject("beat")) {
		next := m.Headers().Get(jetstream.ScheduleNextHeader)
		if seen[next] {
			t.Errorf("two ticks announce %s: one fired twice", next)
		}
		seen[next] = true
	}
}
