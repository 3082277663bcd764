package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// series is one latency distribution to draw, in microseconds.
type series struct {
	label string
	q     []float64 // values at 0..100 %
	p50   float64
	p99   float64
}

type panel struct {
	title string
	lines []series
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// renderSVG draws the invoke latency distributions (warm and cold) as CDFs on
// a log time axis, by hand: no plotting dependency.
func renderSVG(res *Results) string {
	var panels []panel
	add := func(title string, ids []string, short map[string]string) {
		p := panel{title: title}
		for _, f := range res.Figures {
			if !containsStr(ids, f.ID) {
				continue
			}
			for _, r := range f.Rows {
				if !r.Measured || r.Stats == nil || len(r.Stats.Quantiles) != 101 {
					continue
				}
				scale := 1.0
				if r.Unit == "ms" {
					scale = 1000
				}
				q := make([]float64, 101)
				for i, v := range r.Stats.Quantiles {
					q[i] = v * scale
				}
				label := r.Label
				if s, ok := short[r.Label]; ok {
					label = s
				}
				p.lines = append(p.lines, series{label: label, q: q, p50: r.Median * scale, p99: r.P99 * scale})
			}
		}
		if len(p.lines) > 0 {
			panels = append(panels, p)
		}
	}
	add("Warm invoke, one caller (CDF)", []string{"warm"}, map[string]string{
		"bare nats.go responder on the same server (the floor)":                           "bare NATS responder (floor)",
		"dartup `lambda.echo` over NATS":                                                  "dartup lambda.echo (NATS)",
		"dartup HTTP gateway POST /echo (keep-alive)":                                     "dartup HTTP gateway",
		"the same bootstrap under the AWS Runtime Interface Emulator (HTTP)":              "AWS Runtime Interface Emulator",
		"protocol floor: minimal NATS → Runtime API relay (harness) + the same bootstrap": "NATS → Runtime API relay (protocol floor)",
	})
	add("Cold invoke (CDF)", []string{"cold", "cold-dart"}, map[string]string{
		"bootstrap started by hand: fork → first GET …/next":                            "Go bootstrap by hand → next",
		"bootstrap started by hand: fork → response posted":                             "Go bootstrap by hand → response",
		"dartup first request, `lambda.cold` with --keep-warm 0 (NATS request → reply)": "dartup lambda.cold first request",
		"`dart sass.snapshot --stdin` run directly (fork → exit)":                       "Dart sass run directly",
		"dartup `lambda.sass` (stdio, --runtime aot): request → CSS":                    "dartup lambda.sass (stdio)",
	})
	const W, PH = 800, 300 // PH: a panel without its legend
	var b strings.Builder
	H := 0
	for _, p := range panels {
		H += PH + 16*len(p.lines) + 10
	}
	H = max(H, 60)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	if len(panels) == 0 {
		fmt.Fprintf(&b, `<text x="20" y="40">no invoke latencies in this run</text>`+"\n</svg>\n")
		return b.String()
	}
	y := 0.0
	for _, p := range panels {
		drawPanel(&b, p, 0, y, W, PH)
		y += float64(PH + 16*len(p.lines) + 10)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func drawPanel(b *strings.Builder, p panel, x0, y0 float64, w, h int) {
	const ml, mr, mt, mb = 60.0, 20.0, 30.0, 45.0
	pw, ph := float64(w)-ml-mr, float64(h)-mt-mb
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range p.lines {
		for _, v := range s.q {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	dlo, dhi := niceDown(lo), niceUp(hi)
	if dhi <= dlo {
		dhi = dlo + 1
	}
	xOf := func(v float64) float64 {
		v = math.Max(v, math.Pow(10, dlo))
		return x0 + ml + (math.Log10(v)-dlo)/(dhi-dlo)*pw
	}
	yOf := func(pct float64) float64 { return y0 + mt + ph - pct/100*ph }
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="14" font-weight="bold">%s</text>`+"\n", x0+ml, y0+20, html.EscapeString(p.title))
	// grid and axes
	for d := math.Floor(dlo); d <= dhi; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if math.Log10(v) < dlo-1e-9 || math.Log10(v) > dhi+1e-9 {
				continue
			}
			x := xOf(v)
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x, yOf(0), x, yOf(100), stroke)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">%s</text>`+"\n", x, yOf(0)+16, axisLabel(v))
		}
	}
	for pct := 0.0; pct <= 100; pct += 25 {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0+ml, yOf(pct), x0+ml+pw, yOf(pct))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#444">%.0f%%</text>`+"\n", x0+ml-6, yOf(pct)+4, pct)
	}
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", x0+ml, yOf(100), pw, ph)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#444">latency (log scale)</text>`+"\n", x0+ml+pw/2, y0+float64(h)-8)
	fmt.Fprintf(b, `<text x="14" y="%.1f" text-anchor="middle" fill="#444" transform="rotate(-90 14 %.1f)">requests at or below</text>`+"\n", yOf(50), yOf(50))
	lx := x0 + ml
	for i, s := range p.lines {
		color := palette[i%len(palette)]
		var pts []string
		for j, v := range s.q {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(v), yOf(float64(j))))
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		ly := y0 + float64(h) + 6 + float64(i)*16 // legend below the plot
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", lx, ly-4, lx+18, ly-4, color)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#222">%s — p50 %s, p99 %s</text>`+"\n", lx+24, ly, html.EscapeString(s.label), axisLabel(s.p50), axisLabel(s.p99))
	}
}

// axisLabel formats microseconds as µs or ms.
func axisLabel(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.3g s", us/1e6)
	case us >= 1000:
		return fmt.Sprintf("%.3g ms", us/1000)
	default:
		return fmt.Sprintf("%.3g µs", us)
	}
}

// niceDown returns log10 of the largest 1, 2 or 5 × 10^k at or below v.
func niceDown(v float64) float64 {
	d := math.Floor(math.Log10(v))
	for _, m := range []float64{5, 2, 1} {
		if m*math.Pow(10, d) <= v {
			return math.Log10(m * math.Pow(10, d))
		}
	}
	return d
}

// niceUp returns log10 of the smallest 1, 2 or 5 × 10^k at or above v.
func niceUp(v float64) float64 {
	d := math.Floor(math.Log10(v))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*math.Pow(10, d) >= v {
			return math.Log10(m * math.Pow(10, d))
		}
	}
	return d + 1
}
