package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/dartup/dartup/clientsdk"
)

// topScreen is everything `dartup top` shows, as the model last saw it;
// renderTop turns it into the screen's text.
type topScreen struct {
	Width, Height int
	Now           time.Time
	// Server is the URL connected to; Reconnecting says the connection is
	// down and nats.go is trying again.
	Server       string
	Reconnecting bool
	Interval     time.Duration
	// Loaded is set once a refresh has answered; Apps, Nodes and UpdatedAt
	// are from the last one that did.
	Loaded    bool
	Apps      []clientsdk.AppSummary
	Nodes     []clientsdk.Node
	UpdatedAt time.Time
	// Err is why the last refresh failed ("" when it worked), since ErrAt.
	Err   string
	ErrAt time.Time
	// Rates are the lambdas' invocations per second.
	Rates    map[string]float64
	Selected string
	// LogApp is the app whose lines Logs holds (cleaned already); LogNote
	// says something about them (lines skipped, following failed).
	LogApp  string
	Logs    []clientsdk.LogLine
	LogNote string
	Help    bool
}

// tone is the colour of a piece of the screen.
type tone int

const (
	toneNone tone = iota
	toneGood
	toneWarn
	toneBad
	toneDim
	toneTitle
	toneSelected
)

// topPaint styles text in a tone; nil paints nothing (tests, NO_COLOR).
type topPaint func(tone, string) string

func (p topPaint) do(t tone, s string) string {
	if p == nil || t == toneNone {
		return s
	}
	return p(t, s)
}

// topColumn is a table column: its title, its widest cells (0: as wide as
// the screen leaves) and whether it is aligned right.
type topColumn struct {
	title string
	max   int
	right bool
}

var daemonColumns = []topColumn{{"APP", 24, false}, {"#", 4, true}, {"STATE", 9, false}, {"NODE", 16, false}, {"PID", 8, true},
	{"UPTIME", 6, true}, {"RESTARTS", 8, true}, {"CPU", 7, true}, {"MEM", 10, true}, {"", 0, false}}

var lambdaColumns = []topColumn{{"LAMBDA", 24, false}, {"RATE", 8, true}, {"CALLS", 9, true}, {"ERRORS", 7, true}, {"COLD", 6, true},
	{"P50", 8, true}, {"P99", 8, true}, {"WARM", 5, true}, {"", 0, false}}

// topRow is one row of a table: the app it belongs to, whether it is the
// app's first (where the selection shows), its cells and the tone of the
// cell toneAt.
type topRow struct {
	app    string
	first  bool
	cells  []string
	tone   tone
	toneAt int
}

// topOrder is the order the apps are listed and selected in: daemons, then
// lambdas, each sorted by name (as list answers).
func topOrder(apps []clientsdk.AppSummary) []string {
	var d, l []string
	for _, a := range apps {
		if a.Kind == clientsdk.KindLambda {
			l = append(l, a.Name)
		} else {
			d = append(d, a.Name)
		}
	}
	return append(d, l...)
}

// instanceTone colours an instance state.
func instanceTone(st clientsdk.InstanceState) tone {
	switch st {
	case clientsdk.StateRunning:
		return toneGood
	case clientsdk.StateStarting, clientsdk.StateStopping, clientsdk.StatePending, clientsdk.StateBackoff:
		return toneWarn
	case clientsdk.StateErrored, clientsdk.StateLost, clientsdk.StateExited:
		return toneBad
	}
	return toneDim
}

// appTone colours an app state.
func appTone(st clientsdk.AppState) tone {
	switch st {
	case clientsdk.AppAlive:
		return toneGood
	case clientsdk.AppError:
		return toneBad
	}
	return toneDim
}

// daemonRows are the daemons' rows: one per instance, the app's name on
// the first; an app without instances gets one row with its state.
func daemonRows(apps []clientsdk.AppSummary, now time.Time) []topRow {
	var rows []topRow
	for _, a := range apps {
		if a.Kind == clientsdk.KindLambda {
			continue
		}
		name := cleanText(a.Name, 256)
		if len(a.Instances) == 0 {
			rows = append(rows, topRow{app: a.Name, first: true, tone: appTone(a.State), toneAt: 2,
				cells: []string{name, "-", string(a.State), "-", "-", "-", "-", "-", "-", cleanText(a.Message, 512)}})
			continue
		}
		for i, in := range a.Instances {
			uptime, pid, cpu, mem := "-", "-", "-", "-"
			if in.State == clientsdk.StateRunning && !in.StartedAt.IsZero() {
				uptime = humanDuration(max(0, now.Sub(in.StartedAt)))
			}
			if in.PID > 0 {
				pid = strconv.Itoa(in.PID)
			}
			if in.State == clientsdk.StateRunning {
				cpu = fmt.Sprintf("%.1f%%", in.CPUPercent)
			}
			if in.MemoryBytes > 0 {
				mem = humanBytes(in.MemoryBytes)
			}
			note := ""
			if in.State != clientsdk.StateRunning && in.LastError != "" {
				note = in.LastError
			}
			shown := ""
			if i == 0 {
				shown = name
			}
			rows = append(rows, topRow{app: a.Name, first: i == 0, tone: instanceTone(in.State), toneAt: 2,
				cells: []string{shown, strconv.Itoa(in.Instance), cleanText(string(in.State), 64), cleanText(in.Node, 256), pid, uptime,
					strconv.Itoa(in.Restarts), cpu, mem, cleanText(note, 512)}})
		}
	}
	return rows
}

// lambdaRows are the lambdas' rows: their stats summed over the nodes, the
// invocation rate from rates (absent: not known yet), and the app's state.
func lambdaRows(apps []clientsdk.AppSummary, rates map[string]float64) []topRow {
	totals := map[string]clientsdk.LambdaTotals{}
	for _, a := range apps {
		if a.Kind == clientsdk.KindLambda {
			for app, t := range clientsdk.AggregateLambdaStats(a.Instances) {
				if app == a.Name {
					totals[app] = t
				}
			}
		}
	}
	var rows []topRow
	for _, a := range apps {
		if a.Kind != clientsdk.KindLambda {
			continue
		}
		t := totals[a.Name]
		rate, known := rates[a.Name]
		state := string(a.State)
		if a.Message != "" {
			state += " - " + a.Message
		}
		rows = append(rows, topRow{app: a.Name, first: true, tone: appTone(a.State), toneAt: 8,
			cells: []string{cleanText(a.Name, 256), rateText(rate, known), strconv.FormatUint(t.Invocations, 10),
				strconv.FormatUint(t.Errors, 10), strconv.FormatUint(t.ColdStarts, 10), latencyText(t.P50.D()), latencyText(t.P99.D()),
				strconv.Itoa(a.WarmWorkers), cleanText(state, 512)}})
	}
	return rows
}

// columnWidths sizes the columns to their widest cell (title included),
// at most each column's max.
func columnWidths(cols []topColumn, rows []topRow) []int {
	w := make([]int, len(cols))
	for i, c := range cols {
		w[i] = ansi.StringWidth(c.title)
		for _, r := range rows {
			if i < len(r.cells) {
				w[i] = max(w[i], ansi.StringWidth(r.cells[i]))
			}
		}
		if c.max > 0 {
			w[i] = min(w[i], c.max)
		}
	}
	return w
}

// tableLines renders a table: its header line, then its rows, each cut to
// width, with the selected app's first row marked and highlighted. focus is
// the index (in the returned lines) of that row, -1 when not here.
func tableLines(cols []topColumn, rows []topRow, selected string, width int, paint topPaint) (lines []string, focus int) {
	focus = -1
	if len(rows) == 0 {
		return nil, focus
	}
	w := columnWidths(cols, rows)
	cellsOf := func(cells []string, r *topRow) string {
		parts := make([]string, len(cols))
		for i, c := range cols {
			v := ""
			if i < len(cells) {
				v = cells[i]
			}
			v = pad(v, w[i], c.right)
			if r != nil && i == r.toneAt {
				v = paint.do(r.tone, v)
			}
			parts[i] = v
		}
		return strings.TrimRight(strings.Join(parts, "  "), " ")
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	lines = append(lines, paint.do(toneTitle, fit("  "+cellsOf(titles, nil), width)))
	for _, r := range rows {
		if r.first && r.app == selected {
			focus = len(lines)
			plain := "> " + cellsOf(r.cells, nil)
			lines = append(lines, paint.do(toneSelected, pad(plain, width, false)))
			continue
		}
		lines = append(lines, fit("  "+cellsOf(r.cells, &r), width))
	}
	return lines, focus
}

// scrollStart is the first of total lines to show in size lines so that
// line focus (-1: none) is on screen.
func scrollStart(total, size, focus int) int {
	if size <= 0 || total <= size || focus < size {
		return 0
	}
	return min(focus-size+1, total-size)
}

// splitHeight shares rows lines between the tables (which need want) and
// the log pane: the tables first, but the log pane keeps 4 lines (its
// title and 3 lines) when there are 8 or more.
func splitHeight(rows, want int) (tables, logs int) {
	if rows <= 0 {
		return 0, 0
	}
	keep := 0
	if rows >= 8 {
		keep = 4
	}
	tables = min(want, rows-keep)
	return tables, rows - tables
}
