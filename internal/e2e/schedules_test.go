package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// restartableCluster is three clustered `dartup serve` processes (without
// runners) that can be killed and started again on their data.
type restartableCluster struct {
	t       *testing.T
	servers []*server
	start   func(i int) *server
	urls    []string
}

func startRestartableCluster(t *testing.T) *restartableCluster {
	t.Helper()
	nats, routes := freePorts(t, 3), freePorts(t, 3)
	dirs := []string{testutil.TempDir(t), testutil.TempDir(t), testutil.TempDir(t)}
	c := &restartableCluster{t: t, servers: make([]*server, 3)}
	for i := range 3 {
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", nats[i]))
	}
	c.start = func(i int) *server {
		var others []string
		for j := range 3 {
			if j != i {
				others = append(others, fmt.Sprintf("nats://127.0.0.1:%d", routes[j]))
			}
		}
		return startServeAt(t, dirs[i], fmt.Sprintf("127.0.0.1:%d", nats[i]), "--name", fmt.Sprintf("s%d", i+1), "--no-runner",
			"--cluster-addr", fmt.Sprintf("127.0.0.1:%d", routes[i]), "--routes", strings.Join(others, ","))
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); c.servers[i] = c.start(i) }()
	}
	wg.Wait()
	return c
}

// index returns the index of the server named name ("s2" → 1), or -1.
func (c *restartableCluster) index(name string) int {
	var i int
	if _, err := fmt.Sscanf(name, "s%d", &i); err != nil || i < 1 || i > 3 {
		return -1
	}
	return i - 1
}

// metaLeader waits until server s names the JetStream meta leader, other
// than not, and returns its index.
func (c *restartableCluster) metaLeader(s *server, not int) int {
	c.t.Helper()
	leader := -1
	testutil.WaitFor(c.t, 60*time.Second, "a JetStream meta leader", func() bool {
		out, err := s.try("info", "--json")
		var si clientsdk.ServerInfo
		if err != nil || json.Unmarshal([]byte(out), &si) != nil {
			return false
		}
		leader = c.index(si.JetStreamLeader)
		return leader >= 0 && leader != not
	})
	return leader
}

// streamLeader waits until the schedules stream has a leader, as server s
// sees it, and returns its index.
func (c *restartableCluster) streamLeader(js jetstream.JetStream) int {
	c.t.Helper()
	leader := -1
	testutil.WaitFor(c.t, 60*time.Second, "a leader of "+clientsdk.SchedulesStream, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, clientsdk.SchedulesStream)
		if err != nil || st.CachedInfo().Cluster == nil {
			return false
		}
		leader = c.index(st.CachedInfo().Cluster.Leader)
		return leader >= 0
	})
	return leader
}

// observedTick is one tick read back from the schedules stream.
type observedTick struct {
	at, next  time.Time
	scheduler string
}

// readTicks reads every tick of lambda name from the schedules stream,
// where they stay (at most 100 per lambda) whoever runs them. Each read is
// bounded: while the stream elects a leader it fails rather than wait.
func readTicks(t *testing.T, js jetstream.JetStream, name string) ([]observedTick, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	subj := clientsdk.TickSubject(name)
	st, err := js.Stream(ctx, clientsdk.SchedulesStream)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return nil, err
	}
	want := int(info.State.Subjects[subj])
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, InactiveThreshold: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	var out []observedTick
	for len(out) < want {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			next, err := time.Parse(time.RFC3339Nano, m.Headers().Get(jetstream.ScheduleNextHeader))
			if err != nil {
				t.Errorf("tick %d: %s %q: %v", md.Sequence.Stream, jetstream.ScheduleNextHeader, m.Headers().Get(jetstream.ScheduleNextHeader), err)
			}
			out = append(out, observedTick{at: md.Timestamp, next: next, scheduler: m.Headers().Get(jetstream.SchedulerHeader)})
		}
		if n == 0 {
			return nil, fmt.Errorf("read %d of %d ticks: %v", len(out), want, batch.Error())
		}
	}
	return out, nil
}

// A schedule "@every 2s" on a 3-server cluster for over 30 s, while first
// the JetStream meta leader, then the schedules stream's leader (the server
// that fires the ticks) is killed with SIGKILL and started again: each tick
// fires once (no two for one time), none more than one period late (none
// skipped), and no server writes the schedule again when it comes back.
func TestClusterScheduleFiresOnceThroughLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const period = 2 * time.Second
	c := startRestartableCluster(t)
	nc, err := natsgo.Connect(strings.Join(c.urls, ","), natsgo.MaxReconnects(-1), natsgo.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	c.servers[0].dartup("push", "--lambda", "--name", "ticker", "--detach", "--schedule", "@every 2s", "--runtime", "command", "--", "/bin/true")
	var schedSeq uint64
	testutil.WaitFor(t, 30*time.Second, "the schedule stored and a first tick", func() bool {
		st, err := js.Stream(context.Background(), clientsdk.SchedulesStream)
		if err != nil {
			return false
		}
		m, err1 := st.GetLastMsgForSubject(context.Background(), clientsdk.ScheduleSubject("ticker", 0))
		_, err2 := st.GetLastMsgForSubject(context.Background(), clientsdk.TickSubject("ticker"))
		if err1 == nil {
			schedSeq = m.Sequence
		}
		return err1 == nil && err2 == nil
	})
	begin := time.Now()
	// Ticks are counted by the stream's count of their subject (no
	// consumer per look); they are read once, at the end.
	tickCount := func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, clientsdk.SchedulesStream)
		if err != nil {
			return 0, err
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(clientsdk.TickSubject("ticker")))
		if err != nil {
			return 0, err
		}
		return int(info.State.Subjects[clientsdk.TickSubject("ticker")]), nil
	}
	waitTicks := func(what string, n int) {
		t.Helper()
		var have int
		testutil.WaitFor(t, 60*time.Second, "the tick count", func() bool {
			var err error
			have, err = tickCount()
			return err == nil
		})
		testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("%d more ticks %s", n, what), func() bool {
			now, err := tickCount()
			return err == nil && now >= have+n
		})
	}
	waitTicks("before anything is killed", 2)

	// The meta leader dies; the cluster elects another and ticks go on;
	// it comes back.
	meta := c.metaLeader(c.servers[0], -1)
	t.Logf("%.1fs: killing the meta leader s%d (the schedules stream's leader is s%d)", time.Since(begin).Seconds(), meta+1, c.streamLeader(js)+1)
	c.servers[meta].kill9()
	c.metaLeader(c.servers[(meta+1)%3], meta)
	waitTicks("with the old meta leader down", 2)
	c.servers[meta] = c.start(meta)
	t.Logf("%.1fs: s%d is back", time.Since(begin).Seconds(), meta+1)
	waitTicks("with it back", 2)

	// The schedules stream's leader, which fires the ticks, dies and comes back.
	leader := c.streamLeader(js)
	t.Logf("%.1fs: killing the schedules stream's leader s%d", time.Since(begin).Seconds(), leader+1)
	c.servers[leader].kill9()
	waitTicks("with the old stream leader down", 2)
	c.servers[leader] = c.start(leader)
	t.Logf("%.1fs: s%d is back", time.Since(begin).Seconds(), leader+1)
	testutil.WaitFor(t, 60*time.Second, "17 ticks (over 30 s)", func() bool {
		n, err := tickCount()
		return err == nil && n >= 17
	})
	var ticks []observedTick
	testutil.WaitFor(t, 30*time.Second, "the ticks read back", func() bool {
		ticks, err = readTicks(t, js, "ticker")
		return err == nil
	})
	if d := ticks[len(ticks)-1].at.Sub(ticks[0].at); d < 30*time.Second {
		t.Errorf("the ticks span %s; want over 30 s", d)
	}
	checkTicks(t, ticks, period, 2)
	st, err := js.Stream(context.Background(), clientsdk.SchedulesStream)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.GetLastMsgForSubject(context.Background(), clientsdk.ScheduleSubject("ticker", 0)); err != nil || m.Sequence != schedSeq {
		t.Errorf("the schedule's message: %v, sequence %d; want it untouched at %d (a restarted server must not write it again)", err, m.Sequence, schedSeq)
	}
}

// checkTicks checks that the ticks of an "@every period" schedule fired
// once each, in order, never before their time (tick k is due when tick k-1
// said it would fire next), and that at most one tick per disruption came
// late: the ticks due while the schedules stream elects a new leader fire
// once, late, and the next is on time again. It returns how many were late.
func checkTicks(t *testing.T, ticks []observedTick, period time.Duration, disruptions int) {
	t.Helper()
	var log []string
	for i, tk := range ticks {
		line := fmt.Sprintf("%s next %s", tk.at.Format("15:04:05.000"), tk.next.Format("15:04:05"))
		if i > 0 {
			line += fmt.Sprintf("  late %s", tk.at.Sub(ticks[i-1].next).Round(time.Millisecond))
		}
		log = append(log, line)
	}
	t.Logf("%d ticks:\n%s", len(ticks), strings.Join(log, "\n"))
	if len(ticks) < 10 {
		t.Errorf("%d ticks; want at least 10", len(ticks))
	}
	late, lastLate := 0, -2
	for i := 1; i < len(ticks); i++ {
		prev, tk := ticks[i-1], ticks[i]
		due := prev.next
		switch {
		case tk.scheduler != clientsdk.ScheduleSubject("ticker", 0):
			t.Errorf("tick %d from %q", i, tk.scheduler)
		case !tk.next.After(prev.next):
			t.Errorf("tick %d announces %s after tick %d announced %s: a tick fired twice", i, tk.next, i-1, prev.next)
		case tk.at.Before(due.Add(-250 * time.Millisecond)):
			t.Errorf("tick %d at %s, before its time %s: a tick fired twice", i, tk.at, due)
		case tk.at.After(due.Add(maxFailover)):
			t.Errorf("tick %d at %s, %s after its time %s: later than a leader election takes", i, tk.at, tk.at.Sub(due), due)
		case tk.at.After(due.Add(time.Second)):
			late++
			if lastLate == i-1 {
				t.Errorf("ticks %d and %d both late: the schedule did not come back on time after a disruption", i-1, i)
			}
			lastLate = i
		}
	}
	if late > disruptions {
		t.Errorf("%d ticks late; want at most one per disruption (%d)", late, disruptions)
	}
}

// maxFailover bounds how late a tick may come while the schedules stream
// elects a new leader: nats-server's raft election timeout is 4 to 9 s.
const maxFailover = 15 * time.Second
