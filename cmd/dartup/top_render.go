package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/x/ansi"
	"github.com/dartup/dartup/clientsdk"
)

// topDefaultWidth and topDefaultHeight are used before the terminal has
// said its size.
const (
	topDefaultWidth  = 80
	topDefaultHeight = 24
)

// renderTop renders the screen: a header line, the nodes line, the
// refresh error (if any), the daemons' and lambdas' tables (or the help),
// and the log pane of the selected app below. No line is wider than the
// screen and there are no more lines than it has rows.
func renderTop(s topScreen, paint topPaint) string {
	if s.Width <= 0 || s.Height <= 0 {
		s.Width, s.Height = topDefaultWidth, topDefaultHeight
	}
	top := []string{topHeader(s, paint), topNodesLine(s, paint)}
	if s.Err != "" {
		msg := fmt.Sprintf("! cannot refresh for %s (trying every %s): %s", ageText(s.Now.Sub(s.ErrAt)), s.Interval, cleanText(s.Err, 512))
		top = append(top, paint.do(toneBad, fit(msg, s.Width)))
	}
	var body []string
	focus := -1
	switch {
	case s.Help:
		body = topHelp(s.Width)
	case !s.Loaded:
		body = []string{fit("  asking the server…", s.Width)}
	case len(s.Apps) == 0:
		body = []string{fit("  No apps yet: dartup push --name NAME ./program (this view updates by itself)", s.Width)}
	default:
		body, focus = topTables(s, paint)
	}
	lines := top
	if len(lines) >= s.Height {
		return strings.Join(lines[:s.Height], "\n")
	}
	tablesH, logsH := splitHeight(s.Height-len(lines), len(body))
	start := scrollStart(len(body), tablesH, focus)
	lines = append(lines, body[start:start+tablesH]...)
	lines = append(lines, topLogPane(s, logsH, paint)...)
	return strings.Join(lines, "\n")
}

// topHeader is the first line: what this is, where it looks, and the keys.
func topHeader(s topScreen, paint topPaint) string {
	server := cleanText(s.Server, 256)
	if s.Reconnecting {
		server += " (reconnecting)"
	}
	left := "dartup top  " + server
	if s.Loaded {
		left += fmt.Sprintf("  %d apps  %s", len(s.Apps), s.UpdatedAt.Local().Format("15:04:05"))
	}
	right := "?:help  q:quit"
	gap := s.Width - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 2 {
		return paint.do(toneTitle, fit(left, s.Width))
	}
	return paint.do(toneTitle, left+strings.Repeat(" ", gap)+right)
}

// topNodesLine lists the nodes with their heartbeat age, dead and
// draining ones said so.
func topNodesLine(s topScreen, paint topPaint) string {
	if !s.Loaded {
		return ""
	}
	if len(s.Nodes) == 0 {
		return paint.do(toneBad, fit("nodes: none (no runner: apps cannot run)", s.Width))
	}
	parts := make([]string, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		id := cleanText(n.ID, 128)
		age := ageText(n.HeartbeatAge.D())
		switch {
		case !n.Alive:
			parts = append(parts, paint.do(toneBad, id+" DEAD hb "+age))
		case n.Draining:
			parts = append(parts, paint.do(toneWarn, id+" draining hb "+age))
		default:
			parts = append(parts, id+" hb "+age+" load "+strconv.FormatFloat(n.Load1, 'f', 2, 64))
		}
	}
	return fit("nodes: "+strings.Join(parts, " · "), s.Width)
}

// topTables renders the daemons' table, then the lambdas', and says which
// line the selected app is on.
func topTables(s topScreen, paint topPaint) ([]string, int) {
	d, df := tableLines(daemonColumns, daemonRows(s.Apps, s.Now), s.Selected, s.Width, paint)
	l, lf := tableLines(lambdaColumns, lambdaRows(s.Apps, s.Rates), s.Selected, s.Width, paint)
	body := d
	if len(d) > 0 && len(l) > 0 {
		body = append(body, "")
	}
	focus := df
	if lf >= 0 {
		focus = len(body) + lf
	}
	return append(body, l...), focus
}

// topHelp is the help shown instead of the tables.
func topHelp(width int) []string {
	lines := []string{
		"dartup top: keys",
		"  up/k, down/j     choose the app whose output shows below",
		"  home/g, end/G    the first, the last app",
		"  ?                this help (any key closes it)",
		"  q, ctrl+c        quit",
		"",
		"CPU and MEM are sampled on each node every 5 s. RATE is invocations per second",
		"over the last 5 s, CALLS, ERRORS and COLD (cold starts) count since the node",
		"started; P50 and P99 are invocation durations. hb: a node's last heartbeat.",
		"The log pane follows the selected app (as dartup logs -f NAME).",
	}
	for i, l := range lines {
		lines[i] = fit(l, width)
	}
	return lines
}

// topLogPane renders the log pane in height lines: a title line, then the
// last lines of the selected app's output, oldest first.
func topLogPane(s topScreen, height int, paint topPaint) []string {
	if height <= 0 {
		return nil
	}
	title := "── logs"
	if s.LogApp != "" {
		title += ": " + cleanText(s.LogApp, 256)
	}
	if s.LogNote != "" {
		title += " (" + cleanText(s.LogNote, 256) + ")"
	}
	title += " "
	if w := ansi.StringWidth(title); w < s.Width {
		title += strings.Repeat("─", s.Width-w)
	}
	out := []string{paint.do(toneTitle, fit(title, s.Width))}
	logs := s.Logs
	if n := height - 1; len(logs) > n {
		logs = logs[len(logs)-n:]
	}
	for _, l := range logs {
		out = append(out, topLogLine(l, s.Width, paint))
	}
	return out
}

// topLogLine renders one line of output as `dartup logs` does:
// "TIME APP.INSTANCE[ err] | LINE", lifecycle events dimmed.
func topLogLine(l clientsdk.LogLine, width int, paint topPaint) string {
	who := cleanText(l.App, 256) + "." + strconv.Itoa(l.Instance)
	if l.Stream == clientsdk.StreamEvent && l.Instance < 0 {
		who = cleanText(l.App, 256)
	}
	if l.Stream == "err" {
		who += " err"
	}
	line := fit(l.Time.Local().Format("15:04:05")+" "+who+" | "+cleanText(l.Line, topLineBytes), width)
	switch l.Stream {
	case clientsdk.StreamEvent:
		return paint.do(toneDim, line)
	case "err":
		return paint.do(toneWarn, line)
	}
	return line
}
