package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/dartup/dartup/clientsdk"
)

func TestCleanText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 600) // 1200 bytes
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "GET / 200", "GET / 200"},
		{"colours", "\x1b[31mred\x1b[0m and \x1b[1;32mgreen\x1b[m", "red and green"},
		{"title (BEL)", "a\x1b]0;pwned\x07b", "ab"},
		{"title (ST)", "a\x1b]2;pwned\x1b\\b", "ab"},
		{"hyperlink", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\", "click"},
		{"cursor moves and clear", "x\x1b[2J\x1b[H\x1b[10;10Hy", "xy"},
		{"unterminated OSC eats the rest", "ok\x1b]0;title without end", "ok"},
		{"lone ESC", "a\x1bb", "a"},
		{"C0 controls", "a\rb\bc\x07d\x00e\x7ff", "abcdef"},
		{"C1 CSI as a character", "a\u009b31mb", "a31mb"},
		{"bidi override", "abc\u202edcba\u2066x\u2069", "abcdcbax"},
		{"tab", "a\tb", "a    b"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"cut on a character boundary", long, strings.Repeat("é", topLineBytes/2)},
		{"cut with an odd limit", "aé" + long, "a" + strings.Repeat("é", topLineBytes/2-1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cleanText(tc.in, topLineBytes); got != tc.want {
				t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	huge := strings.Repeat("\x1b[31m", 1<<16) + "tail"
	if got := cleanText(huge, topLineBytes); strings.ContainsRune(got, 0x1b) || len(got) > topLineBytes {
		t.Errorf("a huge line of escapes came out as %d bytes %q…", len(got), cutBytes(got, 40))
	}
}

func TestCounterRate(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	at := func(s float64, n uint64) counterSample {
		return counterSample{at: t0.Add(time.Duration(s * float64(time.Second))), n: n}
	}
	for _, tc := range []struct {
		name string
		s    []counterSample
		want float64
	}{
		{"none", nil, 0},
		{"one", []counterSample{at(0, 5)}, 0},
		{"steady", []counterSample{at(0, 10), at(1, 20), at(2, 30)}, 10},
		{"idle", []counterSample{at(0, 7), at(5, 7)}, 0},
		{"bursty writes average out", []counterSample{at(0, 0), at(1, 0), at(2, 20), at(3, 20), at(4, 40)}, 10},
		{"reset counts the new value", []counterSample{at(0, 100), at(1, 110), at(2, 5)}, 7.5},
		{"no time passed", []counterSample{at(1, 1), at(1, 9)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := counterRate(tc.s); got != tc.want {
				t.Errorf("counterRate = %v, want %v", got, tc.want)
			}
		})
	}
}

func lambdaApp(name string, perNode map[string]uint64) clientsdk.AppSummary {
	a := clientsdk.AppSummary{Name: name, Kind: clientsdk.KindLambda, State: clientsdk.AppAlive}
	for node, n := range perNode {
		a.Instances = append(a.Instances, clientsdk.InstanceStatus{App: name, Instance: -1, Node: node, WarmWorkers: 1,
			Lambda: &clientsdk.LambdaStats{Invocations: n, Errors: n / 10, P50: clientsdk.Duration(time.Millisecond), P99: clientsdk.Duration(3 * time.Millisecond)}})
		a.WarmWorkers++
	}
	return a
}

// TestRateTracker: rates per lambda over the window, summed over nodes; a
// node that goes away stops counting; a lambda seen once has no rate yet.
func TestRateTracker(t *testing.T) {
	t.Parallel()
	r := newRateTracker(3 * time.Second)
	t0 := time.Unix(1000, 0)
	rates := r.observe([]clientsdk.AppSummary{lambdaApp("f", map[string]uint64{"a": 0, "b": 0})}, t0)
	if _, ok := rates["f"]; ok {
		t.Fatalf("a rate after one sample: %v", rates)
	}
	// a: +10/s, b: +5/s, for 10 s.
	for i := 1; i <= 10; i++ {
		rates = r.observe([]clientsdk.AppSummary{lambdaApp("f", map[string]uint64{"a": uint64(10 * i), "b": uint64(5 * i)})}, t0.Add(time.Duration(i)*time.Second))
	}
	if rates["f"] != 15 {
		t.Errorf("rate %v, want 15", rates["f"])
	}
	if n := len(r.series["f/a"]); n != 4 {
		t.Errorf("kept %d samples of a 3 s window read every second, want 4", n)
	}
	// Node b goes; a stops being called.
	for i := 11; i <= 14; i++ {
		rates = r.observe([]clientsdk.AppSummary{lambdaApp("f", map[string]uint64{"a": 100})}, t0.Add(time.Duration(i)*time.Second))
	}
	if rates["f"] != 0 || len(r.series) != 1 {
		t.Errorf("after b went and a idled: rate %v, series %v", rates["f"], r.series)
	}
	// A read a minute later still compares with the one before.
	rates = r.observe([]clientsdk.AppSummary{lambdaApp("f", map[string]uint64{"a": 160})}, t0.Add(74*time.Second))
	if rates["f"] != 1 {
		t.Errorf("rate over a minute %v, want 1", rates["f"])
	}
}

func daemonApp(name string, in ...clientsdk.InstanceStatus) clientsdk.AppSummary {
	return clientsdk.AppSummary{Name: name, Kind: clientsdk.KindDaemon, State: clientsdk.AppAlive, Instances: in}
}

func TestDaemonRows(t *testing.T) {
	t.Parallel()
	now := time.Unix(10000, 0)
	apps := []clientsdk.AppSummary{
		daemonApp("web",
			clientsdk.InstanceStatus{Instance: 0, Node: "n1", State: clientsdk.StateRunning, PID: 42, StartedAt: now.Add(-90 * time.Second), Restarts: 2, CPUPercent: 12.34, MemoryBytes: 3 << 20},
			clientsdk.InstanceStatus{Instance: 1, Node: "n2", State: clientsdk.StateBackoff, Restarts: 5, LastError: "exit code 3\x1b[2J"}),
		{Name: "idle", Kind: clientsdk.KindDaemon, State: clientsdk.AppDead, Message: "stopped"},
		lambdaApp("f", map[string]uint64{"a": 1}),
	}
	rows := daemonRows(apps, now)
	want := [][]string{
		{"web", "0", "running", "n1", "42", "1m", "2", "12.3%", "3.0 MiB", ""},
		{"", "1", "backoff", "n2", "-", "-", "5", "-", "-", "exit code 3"},
		{"idle", "-", "dead", "-", "-", "-", "-", "-", "-", "stopped"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %v", len(rows), len(want), rows)
	}
	for i, r := range rows {
		if fmt.Sprint(r.cells) != fmt.Sprint(want[i]) {
			t.Errorf("row %d: %q, want %q", i, r.cells, want[i])
		}
	}
	if !rows[0].first || rows[1].first || rows[1].app != "web" || rows[1].tone != toneWarn || rows[0].tone != toneGood {
		t.Errorf("rows' app, first and tone: %+v", rows)
	}
}

func TestLambdaRows(t *testing.T) {
	t.Parallel()
	apps := []clientsdk.AppSummary{lambdaApp("f", map[string]uint64{"a": 100, "b": 300}), lambdaApp("g", nil), daemonApp("web")}
	apps[1].State, apps[1].Message = clientsdk.AppDead, "pending: no live runner node"
	rows := lambdaRows(apps, map[string]float64{"f": 2.5})
	want := [][]string{
		{"f", "2.5/s", "400", "40", "0", "1.0ms", "3.0ms", "2", "alive"},
		{"g", "-", "0", "0", "0", "-", "-", "0", "dead - pending: no live runner node"},
	}
	if len(rows) != 2 {
		t.Fatalf("rows %v", rows)
	}
	for i, r := range rows {
		if fmt.Sprint(r.cells) != fmt.Sprint(want[i]) {
			t.Errorf("row %d: %q, want %q", i, r.cells, want[i])
		}
	}
}

func TestMoveSelection(t *testing.T) {
	t.Parallel()
	order := []string{"a", "b", "c"}
	for _, tc := range []struct {
		order []string
		cur   string
		delta int
		want  string
	}{
		{order, "a", 1, "b"},
		{order, "b", -1, "a"},
		{order, "a", -1, "a"},
		{order, "c", 1, "c"},
		{order, "b", 10, "c"},
		{order, "b", -1 << 30, "a"},
		{order, "gone", 1, "a"},
		{nil, "a", 1, ""},
	} {
		if got := moveSelection(tc.order, tc.cur, tc.delta); got != tc.want {
			t.Errorf("moveSelection(%v, %q, %d) = %q, want %q", tc.order, tc.cur, tc.delta, got, tc.want)
		}
	}
}

func TestReselect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prev, order []string
		cur, want   string
	}{
		{nil, []string{"a", "b"}, "", "a"},
		{nil, []string{"a", "b"}, "b", "b"},
		{[]string{"a", "b", "c"}, []string{"a", "c"}, "b", "c"},
		{[]string{"a", "b", "c"}, []string{"a", "b"}, "c", "b"},
		{[]string{"a"}, nil, "a", ""},
		{nil, []string{"a", "b"}, "named-but-absent", "a"},
	} {
		if got := reselect(tc.prev, tc.order, tc.cur); got != tc.want {
			t.Errorf("reselect(%v, %v, %q) = %q, want %q", tc.prev, tc.order, tc.cur, got, tc.want)
		}
	}
}

func TestScrollStartAndSplit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ total, size, focus, want int }{
		{10, 20, 5, 0}, {10, 5, 3, 0}, {10, 5, 4, 0}, {10, 5, 5, 1}, {10, 5, 9, 5}, {10, 5, -1, 0}, {10, 0, 9, 0},
	} {
		if got := scrollStart(tc.total, tc.size, tc.focus); got != tc.want {
			t.Errorf("scrollStart(%d, %d, %d) = %d, want %d", tc.total, tc.size, tc.focus, got, tc.want)
		}
	}
	for _, tc := range []struct{ rows, want, tables, logs int }{
		{0, 5, 0, 0}, {3, 5, 3, 0}, {7, 10, 7, 0}, {8, 10, 4, 4}, {30, 10, 10, 20}, {30, 0, 0, 30},
	} {
		if a, b := splitHeight(tc.rows, tc.want); a != tc.tables || b != tc.logs {
			t.Errorf("splitHeight(%d, %d) = %d, %d, want %d, %d", tc.rows, tc.want, a, b, tc.tables, tc.logs)
		}
	}
}

// busyScreen is a screen with much on it, and text from apps that tries to
// drive the terminal.
func busyScreen() topScreen {
	now := time.Unix(20000, 0)
	var apps []clientsdk.AppSummary
	for i := range 12 {
		var in []clientsdk.InstanceStatus
		for j := range 3 {
			in = append(in, clientsdk.InstanceStatus{Instance: j, Node: "node-" + strings.Repeat("x", i), State: clientsdk.StateRunning,
				PID: 1000 + j, StartedAt: now.Add(-time.Hour), CPUPercent: 99.9, MemoryBytes: 1 << 30})
		}
		apps = append(apps, daemonApp(fmt.Sprintf("app%02d-%s", i, strings.Repeat("long", i)), in...))
	}
	apps = append(apps, lambdaApp("fn", map[string]uint64{"n": 12345}))
	apps[0].Instances[0].State, apps[0].Instances[0].LastError = clientsdk.StateErrored, "boom\x1b]0;title\x07\x1b[31m 日本語"
	var logs []clientsdk.LogLine
	for i := range 100 {
		logs = append(logs, clientsdk.LogLine{App: "fn", Instance: i % 3, Stream: []string{"out", "err", clientsdk.StreamEvent}[i%3],
			Time: now, Line: fmt.Sprintf("line %d \x1b[2J\x1b[H\ttabbed 日本語 %s", i, strings.Repeat("w", i*3))})
	}
	return topScreen{Now: now, Server: "nats://127.0.0.1:4222", Interval: time.Second, Loaded: true, Apps: apps, UpdatedAt: now,
		Nodes: []clientsdk.Node{{ID: "a", Alive: true, Load1: 0.5}, {ID: "b", Draining: true, Alive: true}, {ID: "c"}},
		Err:   "nats: timeout\x1b[5m", ErrAt: now.Add(-3 * time.Second), Rates: map[string]float64{"fn": 3}, Selected: "fn",
		LogApp: "fn", Logs: logs, LogNote: "3 lines skipped"}
}

// escapePaint marks tones with escapes, as lipgloss does.
func escapePaint(t tone, s string) string { return fmt.Sprintf("\x1b[%dm%s\x1b[0m", 30+int(t), s) }

// TestRenderTopFits: at any size, no line is wider than the screen, there
// are no more lines than rows, and nothing from the apps reaches the
// terminal as a control character.
func TestRenderTopFits(t *testing.T) {
	t.Parallel()
	screens := map[string]topScreen{"busy": busyScreen(), "empty": {Loaded: true}, "loading": {}}
	help := busyScreen()
	help.Help = true
	screens["help"] = help
	for name, s := range screens {
		for w := 1; w <= 160; w += 7 {
			for h := 1; h <= 50; h += 3 {
				s.Width, s.Height = w, h
				for pi, paint := range []topPaint{nil, escapePaint} {
					out := renderTop(s, paint)
					lines := strings.Split(out, "\n")
					if len(lines) > h {
						t.Fatalf("%s %dx%d: %d lines", name, w, h, len(lines))
					}
					for _, l := range lines {
						if ansi.StringWidth(l) > w {
							t.Fatalf("%s %dx%d: line %q is %d wide", name, w, h, l, ansi.StringWidth(l))
						}
						plain := l
						if pi == 1 {
							plain = ansi.Strip(l)
						}
						for _, r := range plain {
							if isControl(r) || r == '\t' || isBidiControl(r) {
								t.Fatalf("%s %dx%d: control %U in %q", name, w, h, r, l)
							}
						}
					}
				}
			}
		}
	}
}

// TestRenderTopShowsSelection: the selected app's row stays on screen in
// a short terminal, marked; the log pane shows the newest lines.
func TestRenderTopShowsSelection(t *testing.T) {
	t.Parallel()
	s := busyScreen()
	s.Width, s.Height = 100, 16
	out := renderTop(s, nil)
	if !strings.Contains(out, "> fn ") {
		t.Errorf("the selected lambda is not shown:\n%s", out)
	}
	if !strings.Contains(out, "line 99 ") || strings.Contains(out, "line 90 ") {
		t.Errorf("the log pane does not end with the newest lines:\n%s", out)
	}
	if !strings.Contains(out, "3.0/s") || !strings.Contains(out, "c DEAD") || !strings.Contains(out, "! cannot refresh") {
		t.Errorf("rate, dead node or error missing:\n%s", out)
	}
	s.Selected = "app00-"
	if out := renderTop(s, nil); !strings.Contains(out, "> app00-") || strings.Contains(out, "> fn") {
		t.Errorf("the first app selected:\n%s", out)
	}
}

func key(k string) tea.KeyMsg {
	switch k {
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

// TestTopModel drives the model with messages as bubbletea would.
func TestTopModel(t *testing.T) {
	t.Parallel()
	m := newTopModel(time.Second, "", nil)
	var feeds []*logFeed
	m.follow = func(gen int, app string) (*logFeed, tea.Cmd) {
		f, _ := newLogFeed(t.Context(), gen, app)
		feeds = append(feeds, f)
		return f, nil
	}
	t0 := time.Unix(30000, 0)
	apps := []clientsdk.AppSummary{daemonApp("b"), daemonApp("a"), lambdaApp("f", map[string]uint64{"n": 1})}
	m.Update(tea.WindowSizeMsg{Width: 90, Height: 30})
	if cmd := m.onData(topDataMsg{apps: apps, at: t0, server: "nats://x"}); cmd == nil {
		t.Fatal("no next refresh scheduled")
	}
	if m.screen.Selected != "b" || m.screen.LogApp != "b" || m.screen.Width != 90 || !m.screen.Loaded {
		t.Fatalf("after the first refresh: %+v", m.screen)
	}
	if _, cmd := m.Update(key("down")); cmd == nil || m.screen.Selected != "a" {
		t.Fatalf("down: selected %q, cmd %v", m.screen.Selected, cmd)
	}
	m.Update(key("j"))
	if m.screen.Selected != "f" {
		t.Fatalf("j: selected %q", m.screen.Selected)
	}
	// Only the last move's settling points the log pane at the app.
	m.Update(topSettledMsg{gen: m.settle - 1})
	if m.screen.LogApp != "b" {
		t.Errorf("an old settle moved the log pane to %q", m.screen.LogApp)
	}
	m.Update(topSettledMsg{gen: m.settle})
	if m.screen.LogApp != "f" || len(feeds) != 2 || feeds[1].app != "f" || feeds[1].gen != feeds[0].gen+1 {
		t.Fatalf("log pane on %q, feeds %v; want f's", m.screen.LogApp, feeds)
	}
	select {
	case <-feeds[0].done:
	default:
		t.Error("b's feed goes on after the pane moved to f")
	}
	if _, cmd := m.Update(topLogsMsg{gen: feeds[1].gen, lines: []clientsdk.LogLine{{App: "f", Line: "hello"}}, dropped: 3}); cmd == nil ||
		len(m.screen.Logs) != 1 || !strings.HasPrefix(m.screen.LogNote, "3 lines skipped") {
		t.Errorf("f's lines: %v, note %q", m.screen.Logs, m.screen.LogNote)
	}
	// A failed refresh keeps what was shown, and says why.
	m.Update(topDataMsg{err: fmt.Errorf("nats: timeout"), at: t0.Add(time.Second)})
	if m.screen.Err != "nats: timeout" || len(m.screen.Apps) != 3 || !m.screen.ErrAt.Equal(t0.Add(time.Second)) {
		t.Errorf("after a failed refresh: err %q, %d apps", m.screen.Err, len(m.screen.Apps))
	}
	m.Update(topDataMsg{err: fmt.Errorf("nats: timeout"), at: t0.Add(2 * time.Second)})
	if !m.screen.ErrAt.Equal(t0.Add(time.Second)) {
		t.Errorf("the error's start moved to %s", m.screen.ErrAt)
	}
	m.Update(topDataMsg{apps: apps[:2], at: t0.Add(3 * time.Second)})
	if m.screen.Err != "" || m.screen.Selected != "a" || m.screen.LogApp != "a" || len(feeds) != 3 {
		t.Errorf("after f went: err %q, selected %q, log pane on %q", m.screen.Err, m.screen.Selected, m.screen.LogApp)
	}
	// Lines of a feed that is not the current one are dropped.
	m.Update(topLogsMsg{gen: 99, lines: []clientsdk.LogLine{{Line: "stale"}}})
	if len(m.screen.Logs) != 0 {
		t.Errorf("stale lines shown: %v", m.screen.Logs)
	}
	m.Update(key("?"))
	if !m.screen.Help {
		t.Error("? shows no help")
	}
	m.Update(key("x"))
	if m.screen.Help {
		t.Error("a key leaves the help open")
	}
	for _, k := range []string{"q", "ctrl+c"} {
		_, cmd := m.Update(key(k))
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", k)
		}
	}
}

// TestTopRefusesWithoutTerminal: top with its output in a pipe says what
// to use instead; a bad --interval is a usage error.
func TestTopRefusesWithoutTerminal(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "", nil, "top")
	if r.code != 2 || !strings.Contains(r.stderr, "dartup list --wide") {
		t.Errorf("top without a terminal: exit %d\n%s", r.code, r.stderr)
	}
	for _, iv := range []string{"10ms", "2h"} {
		if r := runCLI(t, "", nil, "top", "--interval", iv); r.code != 2 || !strings.Contains(r.stderr, "--interval is between") {
			t.Errorf("top --interval %s: exit %d\n%s", iv, r.code, r.stderr)
		}
	}
	if r := runCLI(t, "", nil, "top", "no/such"); r.code != 2 {
		t.Errorf("top no/such: exit %d\n%s", r.code, r.stderr)
	}
}

// TestLogBounds: the log pane keeps its last lines; a feed the screen
// falls behind drops its oldest lines and counts them; lines are cleaned.
func TestLogBounds(t *testing.T) {
	t.Parallel()
	var kept []clientsdk.LogLine
	for i := range 30 {
		kept = keepLogs(kept, []clientsdk.LogLine{{Line: fmt.Sprint(i)}}, 10)
	}
	if len(kept) != 10 || kept[0].Line != "20" || kept[9].Line != "29" {
		t.Errorf("kept %v", kept)
	}
	f, _ := newLogFeed(t.Context(), 7, "web")
	for i := range topLogKeep + 25 {
		f.add(clientsdk.LogLine{Line: fmt.Sprintf("\x1b[31m%d", i)})
	}
	msg, ok := f.wait().(topLogsMsg)
	if !ok || msg.gen != 7 || msg.dropped != 25 || len(msg.lines) != topLogKeep || msg.lines[0].Line != "25" {
		t.Fatalf("wait: gen %d, dropped %d, %d lines, first %q", msg.gen, msg.dropped, len(msg.lines), msg.lines[0].Line)
	}
	f.setNote("following failed")
	if msg := f.wait().(topLogsMsg); len(msg.lines) != 0 || msg.note != "following failed" {
		t.Errorf("after a note: %+v", msg)
	}
	f.cancel()
	if msg := f.wait(); msg != nil {
		t.Errorf("a stopped feed brought %v", msg)
	}
}

// BenchmarkRenderTop renders a screen of 300 daemon instances (100 apps),
// 50 lambdas and a full log pane, as each update does.
func BenchmarkRenderTop(b *testing.B) {
	now := time.Unix(20000, 0)
	var apps []clientsdk.AppSummary
	for i := range 100 {
		var in []clientsdk.InstanceStatus
		for j := range 3 {
			in = append(in, clientsdk.InstanceStatus{Instance: j, Node: "node-1", State: clientsdk.StateRunning, PID: 1000 + j,
				StartedAt: now.Add(-time.Hour), CPUPercent: 1.5, MemoryBytes: 50 << 20})
		}
		apps = append(apps, daemonApp(fmt.Sprintf("app%03d", i), in...))
	}
	for i := range 50 {
		apps = append(apps, lambdaApp(fmt.Sprintf("fn%02d", i), map[string]uint64{"node-1": 100, "node-2": 200}))
	}
	var logs []clientsdk.LogLine
	for i := range topLogKeep {
		logs = append(logs, clientsdk.LogLine{App: "app000", Time: now, Line: fmt.Sprintf("GET /items/%d 200 1.2ms %s", i, strings.Repeat("x", 80))})
	}
	s := topScreen{Width: 200, Height: 60, Now: now, Loaded: true, Apps: apps, Selected: "fn49", LogApp: "app000", Logs: logs,
		Nodes: []clientsdk.Node{{ID: "node-1", Alive: true}, {ID: "node-2", Alive: true}}}
	b.ReportAllocs()
	for b.Loop() {
		_ = renderTop(s, escapePaint)
	}
}
