package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
)

func TestPercentileRanks(t *testing.T) {
	var xs []float64
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	s := summarize(xs, true)
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"min", s.Min, 1}, {"p50", s.Median, 50}, {"p90", s.P90, 90}, {"p99", s.P99, 99}, {"max", s.Max, 100},
		{"q0", s.Quantiles[0], 1}, {"q100", s.Quantiles[100], 100}} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if one := summarize([]float64{7}, false); one.Median != 7 || one.P99 != 7 {
		t.Errorf("one sample: %+v", one)
	}
}

func TestUpdateDocKeepsHandWrittenSections(t *testing.T) {
	p := filepath.Join(testutil.TempDir(t), "benchmarks.md")
	if err := updateDoc(p, "first\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	doc := "# Benchmarks\n\n## Serve cold start (by hand)\n\nkept\n\n" + string(b)[strings.Index(string(b), markBegin):] + "\n## After\n\nalso kept\n"
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateDoc(p, "second\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(p)
	got := string(b)
	for _, want := range []string{"## Serve cold start (by hand)\n\nkept", markBegin + "\nsecond\n" + markEnd, "## After\n\nalso kept"} {
		if !strings.Contains(got, want) {
			t.Errorf("doc lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "first") || strings.Count(got, markBegin) != 1 {
		t.Errorf("old section not replaced exactly once:\n%s", got)
	}
}

// TestQuickRun runs the harness's fast figures for real (dartup serve, the
// SDK, a bare nats-server) into a temporary folder and checks the JSON.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real servers; not in -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		testutil.SkipOrFail(t, "the go tool is needed to build dartup: %v", err)
	}
	dir := testutil.TempDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := config{quick: true, only: []string{"serve", "push", "pubsub"}, outDir: filepath.Join(dir, "out"),
		docsDir: filepath.Join(dir, "docs"), writeDocs: true}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	progress := devnull
	if testing.Verbose() {
		progress = os.Stderr
	}
	if _, err := run(ctx, cfg, progress); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Machine.Cores <= 0 || res.Versions.Go == "" || res.Versions.NATSServer == "" || res.Versions.DartupCommit == "" {
		t.Errorf("machine or versions missing: %+v %+v", res.Machine, res.Versions)
	}
	seen := map[string]bool{}
	for _, f := range res.Figures {
		seen[f.ID] = true
		if f.Status == StatusNotMeasured {
			t.Errorf("figure %s not measured: %s", f.ID, f.Verdict)
		}
		if f.Goal != "" && f.Measured <= 0 {
			t.Errorf("figure %s: goal value %v", f.ID, f.Measured)
		}
		if len(f.Rows) < 2 {
			t.Errorf("figure %s has %d rows, want dartup and a baseline", f.ID, len(f.Rows))
		}
		for _, r := range f.Rows {
			if !r.Measured || r.N <= 0 || r.Median <= 0 || r.P99 < r.Median {
				t.Errorf("figure %s row %q: measured=%v n=%d median=%v p99=%v (%s)", f.ID, r.Label, r.Measured, r.N, r.Median, r.P99, r.Note)
			}
			if r.Role == "dartup" && r.Ratio <= 0 {
				t.Errorf("figure %s row %q has no ratio to its baseline", f.ID, r.Label)
			}
		}
	}
	for _, id := range []string{"serve", "push", "pubsub"} {
		if !seen[id] {
			t.Errorf("figure %s missing from the results", id)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "docs", "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{markBegin, markEnd, "### Summary", "PASS"} {
		if !strings.Contains(string(md), want) && !(want == "PASS" && strings.Contains(string(md), "MISS")) {
			t.Errorf("benchmarks.md lacks %q", want)
		}
	}
	if svg, err := os.ReadFile(filepath.Join(dir, "docs", "benchmarks-invoke.svg")); err != nil || !strings.HasPrefix(string(svg), "<svg") {
		t.Errorf("benchmarks-invoke.svg: %v", err)
	}
}
