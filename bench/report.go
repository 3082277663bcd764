package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Results is everything one run measured; it is written as JSON.
type Results struct {
	Generated      time.Time `json:"generated"`
	Mode           string    `json:"mode"`
	Only           []string  `json:"only,omitempty"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	Machine        Machine   `json:"machine"`
	Versions       Versions  `json:"versions"`
	Figures        []*Figure `json:"figures"`
}

// Figure statuses.
const (
	StatusPass        = "PASS"
	StatusMiss        = "MISS"
	StatusNotMeasured = "not measured"
	StatusInfo        = "info"
)

// Figure is one comparison: dartup's rows, the baselines measured in the same
// run, the goal and its verdict.
type Figure struct {
	ID    string `json:"id"`
	Num   int    `json:"num"`
	Title string `json:"title"`
	// Goal states the target, e.g. "p50 ≤ 2× bare NATS".
	Goal string `json:"goal,omitempty"`
	// Measured is the value compared with the goal, in GoalUnit.
	Measured float64 `json:"measured,omitempty"`
	GoalUnit string  `json:"goal_unit,omitempty"`
	Limit    float64 `json:"limit,omitempty"`
	Status   string  `json:"status"`
	Verdict  string  `json:"verdict"`
	Note     string  `json:"note,omitempty"`
	Rows     []*Row  `json:"rows"`
}

// Row is one measured (or unmeasured) series.
type Row struct {
	Label string `json:"label"`
	// Short names the row when it is a ratio's reference.
	Short string `json:"short,omitempty"`
	// Role is "dartup", "baseline" or "peer".
	Role     string  `json:"role"`
	Measured bool    `json:"measured"`
	Unit     string  `json:"unit,omitempty"`
	N        int     `json:"n,omitempty"`
	Median   float64 `json:"median,omitempty"`
	P99      float64 `json:"p99,omitempty"`
	// Throughput in requests per second, for load figures.
	Throughput float64 `json:"throughput,omitempty"`
	// Ratio is this row's median over RatioTo's (or the throughput ratio).
	Ratio   float64  `json:"ratio,omitempty"`
	RatioTo string   `json:"ratio_to,omitempty"`
	Note    string   `json:"note,omitempty"`
	Stats   *Summary `json:"stats,omitempty"`
	// base is the row Ratio refers to.
	base *Row
}

func (f *Figure) add(r *Row) *Row { f.Rows = append(f.Rows, r); return r }

// row returns the row with label, or nil.
func (f *Figure) row(label string) *Row {
	for _, r := range f.Rows {
		if r.Label == label {
			return r
		}
	}
	return nil
}

// latencyRow summarizes durations in unit ("µs" or "ms").
func latencyRow(label, role, unit string, ds []time.Duration) *Row {
	var xs []float64
	if unit == "ms" {
		xs = millis(ds)
	} else {
		xs = micros(ds)
	}
	s := summarize(xs, true)
	return &Row{Label: label, Role: role, Measured: len(ds) > 0, Unit: unit, N: s.N, Median: s.Median, P99: s.P99, Stats: &s}
}

// valueRow is a single-valued row (e.g. memory in MB, from the median of samples).
func valueRow(label, role, unit string, xs []float64) *Row {
	s := summarize(xs, false)
	return &Row{Label: label, Role: role, Measured: len(xs) > 0, Unit: unit, N: s.N, Median: s.Median, P99: s.P99, Stats: &s}
}

func unmeasured(label, role, why string) *Row {
	return &Row{Label: label, Role: role, Note: "not measured: " + why}
}

// ratio sets r.Ratio to r.Median / base.Median when both were measured.
func ratio(r, base *Row) {
	if r == nil || base == nil || !r.Measured || !base.Measured || base.Median == 0 {
		return
	}
	r.base = base
	r.Ratio, r.RatioTo = r.Median/base.Median, base.Short
	if r.RatioTo == "" {
		r.RatioTo = "baseline"
	}
}

// judge sets the status: measured ≤ limit passes.
func (f *Figure) judge(measured, limit float64, unit string) {
	f.Measured, f.Limit, f.GoalUnit = measured, limit, unit
	if measured <= limit {
		f.Status = StatusPass
	} else {
		f.Status = StatusMiss
	}
	f.Verdict = fmt.Sprintf("%s (goal ≤ %s): %s", fmtVal(measured, unit), fmtVal(limit, unit), f.Status)
}

// notMeasured marks the figure's goal as not measured, with the reason.
func (f *Figure) notMeasured(why string) {
	f.Status, f.Verdict = StatusNotMeasured, "not measured: "+why
}

func (f *Figure) finish() {
	if f.Status == "" {
		f.Status, f.Verdict = StatusInfo, "reported, no goal"
	}
	for _, r := range f.Rows {
		for _, p := range []*float64{&r.Median, &r.P99, &r.Throughput, &r.Ratio} {
			if math.IsNaN(*p) || math.IsInf(*p, 0) {
				*p = 0
			}
		}
	}
}

func fmtVal(v float64, unit string) string {
	switch unit {
	case "×":
		return fmt.Sprintf("%.2f×", v)
	case "µs":
		if math.Abs(v) >= 10000 {
			return fmt.Sprintf("%.1f ms", v/1000)
		}
		if math.Abs(v) >= 100 {
			return fmt.Sprintf("%.0f µs", v)
		}
		return fmt.Sprintf("%.1f µs", v)
	case "ms":
		if math.Abs(v) >= 100 {
			return fmt.Sprintf("%.0f ms", v)
		}
		if math.Abs(v) >= 10 {
			return fmt.Sprintf("%.1f ms", v)
		}
		return fmt.Sprintf("%.2f ms", v)
	case "MB":
		return fmt.Sprintf("%.1f MB", v)
	case "req/s":
		return fmt.Sprintf("%.0f req/s", v)
	case "MB/s":
		return fmt.Sprintf("%.0f MB/s", v)
	case "MB/min":
		return fmt.Sprintf("%+.2f MB/min", v)
	}
	return fmt.Sprintf("%.3g %s", v, unit)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Markers delimit the generated section of docs/benchmarks.md.
const (
	markBegin = "<!-- bench:begin -->"
	markEnd   = "<!-- bench:end -->"
)

// updateDoc replaces the generated section of path (between the markers),
// keeping everything else; it creates the file or the markers when missing.
func updateDoc(path, section string) error {
	gen := markBegin + "\n" + section + markEnd
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		doc := "# Benchmarks\n\n" +
			"dartup measured side by side with its baselines — bare NATS, PM2, the AWS Lambda Runtime\n" +
			"Interface Emulator, running the programs by hand — in one run on one machine. The section\n" +
			"between the `bench` markers is written by `go run ./bench` (see bench/README.md); edit\n" +
			"around it, not inside it.\n\n" + gen + "\n"
		return os.WriteFile(path, []byte(doc), 0o644)
	case err != nil:
		return err
	}
	s := string(b)
	i, j := strings.Index(s, markBegin), strings.Index(s, markEnd)
	if i < 0 || j < i {
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		return os.WriteFile(path, []byte(s+"\n"+gen+"\n"), 0o644)
	}
	return os.WriteFile(path, []byte(s[:i]+gen+s[j+len(markEnd):]), 0o644)
}

func cell(r *Row, v float64) string {
	if !r.Measured || (v == 0 && r.Unit != "MB/min") {
		return "—"
	}
	return fmtVal(v, r.Unit)
}

// renderMarkdown renders the generated section.
func renderMarkdown(res *Results, svg string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m, v := res.Machine, res.Versions
	w("## Results (generated by `go run ./bench`)\n\n")
	mode := res.Mode + " run"
	if len(res.Only) > 0 {
		mode += ", figures " + strings.Join(res.Only, ",")
	}
	w("Run of %s UTC (%s, %.0f s). Every baseline below was measured in this same run on this machine;\n",
		res.Generated.Format("2006-01-02 15:04"), mode, res.ElapsedSeconds)
	w("nothing is typed by hand. Percentiles are taken from the sorted samples (HdrHistogram-style ranks).\n\n")
	w("- **Machine**: %s, %d cores, %.1f GiB, Linux %s (load average %s at start, %s at end; the cores are shared)\n",
		m.CPU, m.Cores, m.MemoryGiB, m.Kernel, m.LoadAvg, m.LoadAvgEnd)
	w("- **Versions**: %s; %s; dartup commit %s; nats-server %s; nats.go %s; aws-lambda-go %s",
		v.Go, v.Dartup, v.DartupCommit, v.NATSServer, v.NATSGo, v.AWSLambdaGo)
	if v.PM2 != "" {
		w("; PM2 %s (node %s)", v.PM2, v.Node)
	}
	if v.Dart != "" {
		w("; %s (sass %s)", v.Dart, v.Sass)
	}
	if v.RIE != "" {
		w("; RIE %s", v.RIE)
	}
	w("\n\n### Summary\n\n")
	w("Each figure's first dartup row against the baseline it is compared with (p50 / p99; throughput where it is a load test).\n\n")
	w("| # | figure | dartup | baseline | ratio | goal | result |\n|---|---|---|---|---|---|---|\n")
	for _, f := range res.Figures {
		var d *Row
		for _, r := range f.Rows {
			if r.Role == "dartup" && (d == nil || (!d.Measured && r.Measured)) {
				d = r
			}
		}
		dcell, bcell, rcell := "not measured", "—", "—"
		if d != nil && d.Measured {
			dcell = briefCell(d)
			if d.base != nil {
				bcell = d.base.Short + ": " + briefCell(d.base)
				rcell = fmt.Sprintf("%.2f×", d.Ratio)
			}
		}
		goal, result := f.Goal, f.Status
		if goal == "" {
			goal = "none set"
		}
		switch f.Status {
		case StatusPass, StatusMiss:
			result = fmt.Sprintf("**%s** (%s)", f.Status, fmtVal(f.Measured, f.GoalUnit))
		case StatusNotMeasured:
			result = "not measured"
		case StatusInfo:
			result = "reported"
		}
		w("| %d | %s | %s | %s | %s | %s | %s |\n", f.Num, f.Title, dcell, bcell, rcell, goal, result)
	}
	for _, f := range res.Figures {
		w("\n### %d. %s\n\n", f.Num, f.Title)
		if f.Goal != "" {
			w("Goal: %s — %s.\n\n", f.Goal, f.Verdict)
		}
		thr := false
		for _, r := range f.Rows {
			thr = thr || r.Throughput > 0
		}
		if thr {
			w("| measurement | n | median | p99 | throughput | ratio | note |\n|---|---|---|---|---|---|---|\n")
		} else {
			w("| measurement | n | median | p99 | ratio | note |\n|---|---|---|---|---|---|\n")
		}
		for _, r := range f.Rows {
			n, ratio := "—", "—"
			if r.Measured {
				n = fmt.Sprint(r.N)
			}
			if r.Ratio > 0 {
				ratio = fmt.Sprintf("%.2f× %s", r.Ratio, r.RatioTo)
			} else if r.Role == "baseline" && r.Measured {
				ratio = "baseline"
			}
			label := r.Label
			if r.Role == "dartup" {
				label = "**" + label + "**"
			}
			if thr {
				tp := "—"
				if r.Throughput > 0 {
					tp = fmtVal(r.Throughput, "req/s")
				}
				w("| %s | %s | %s | %s | %s | %s | %s |\n", label, n, cell(r, r.Median), cell(r, r.P99), tp, ratio, r.Note)
			} else {
				w("| %s | %s | %s | %s | %s | %s |\n", label, n, cell(r, r.Median), cell(r, r.P99), ratio, r.Note)
			}
		}
		if f.Note != "" {
			w("\n%s\n", f.Note)
		}
		if f.ID == "warm" && svg != "" {
			w("\n![Warm invoke latency distributions](%s)\n", svg)
		}
	}
	return b.String()
}

// briefCell is "p50 / p99" of a row, with its throughput for load rows.
func briefCell(r *Row) string {
	if !r.Measured {
		return "not measured"
	}
	c := fmtVal(r.Median, r.Unit)
	if r.P99 != r.Median {
		c += " / " + fmtVal(r.P99, r.Unit)
	}
	if r.Throughput > 0 {
		c = fmtVal(r.Throughput, "req/s") + ", " + c
	}
	return c
}
