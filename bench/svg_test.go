package main

import (
	"strings"
	"testing"
)

// TestSVG renders the plot of an empty and of a one-series run.
func TestSVG(t *testing.T) {
	res := &Results{Figures: []*Figure{{ID: "warm", Rows: []*Row{
		latencyRow("a", "baseline", "µs", nil),
	}}}}
	if got := renderSVG(res); !strings.Contains(got, "no invoke latencies") {
		t.Errorf("empty plot: %s", got)
	}
	q := make([]float64, 101)
	for i := range q {
		q[i] = 100 + float64(i)*10
	}
	res.Figures[0].Rows = []*Row{{Label: "x", Measured: true, Unit: "µs", Median: 600, P99: 1090, Stats: &Summary{Quantiles: q}}}
	if got := renderSVG(res); !strings.Contains(got, "<polyline") || !strings.Contains(got, "p50 600 µs") {
		t.Errorf("plot lacks the series: %s", got)
	}
}
