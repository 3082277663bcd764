package broker_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Every metric the collectors describe is in docs/metrics.md with its
// type, and every one listed there is described (the e2e test checks the
// names a live server exposes against the same table).
func TestMetricsDocumented(t *testing.T) {
	docs := testutil.DocumentedMetrics(t)
	described := broker.DescribedMetrics()
	if len(described) < 30 {
		t.Fatalf("only %d metrics described", len(described))
	}
	for n := range described {
		if _, ok := docs[n]; !ok {
			t.Errorf("%s is not in docs/metrics.md", n)
		}
	}
	for n, typ := range docs {
		if !described[n] {
			t.Errorf("docs/metrics.md lists %s, which no collector describes", n)
		}
		if typ != "counter" && typ != "gauge" && typ != "histogram" {
			t.Errorf("%s: type %q", n, typ)
		}
		if strings.HasSuffix(n, "_total") != (typ == "counter") {
			t.Errorf("%s is a %s: counters, and only they, end in _total", n, typ)
		}
	}
}

// docs/grafana-dashboard.json is valid JSON, every panel has queries, and
// every query names metrics that exist: documented dartup_* ones (with a
// histogram's _bucket, _sum and _count series) and client_golang's go_*
// and process_* ones.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string      `json:"title"`
		Panels []dashPanel `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	known := map[string]bool{}
	for n, typ := range testutil.DocumentedMetrics(t) {
		known[n] = true
		if typ == "histogram" {
			known[n+"_bucket"], known[n+"_sum"], known[n+"_count"] = true, true, true
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		known[f.GetName()] = true
	}
	metric := regexp.MustCompile(`\b(?:dartup|go|process)_[a-z0-9_]+\b`)
	panels := dash.Panels
	if dash.Title == "" || len(panels) < 10 {
		t.Fatalf("a dashboard %q of %d panels", dash.Title, len(panels))
	}
	for len(panels) > 0 {
		p := panels[0]
		panels = append(panels[1:], p.Panels...) // rows hold panels
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !known[n] {
					t.Errorf("panel %q: query %q names %s, which does not exist", p.Title, tg.Expr, n)
				}
			}
		}
	}
}

type dashPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}
