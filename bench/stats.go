package main

import (
	"math"
	"slices"
	"time"
)

// Summary describes a set of latency samples. Percentiles are taken the
// HdrHistogram way from the sorted samples: the value at rank ceil(q·n), so
// p99 of 100 samples is the 99th smallest, never an interpolation.
type Summary struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
	// Quantiles are the values at 0, 1, …, 100 %, for plots.
	Quantiles []float64 `json:"quantiles,omitempty"`
}

// percentile returns the value at quantile q (0…1) of sorted samples.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	r := int(math.Ceil(q * float64(len(sorted))))
	r = min(max(r, 1), len(sorted))
	return sorted[r-1]
}

// summarize sorts a copy of xs and describes it; keepQuantiles adds the
// 101-point quantile curve.
func summarize(xs []float64, keepQuantiles bool) Summary {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return Summary{}
	}
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	out := Summary{N: len(s), Min: s[0], Median: percentile(s, 0.5), P90: percentile(s, 0.9),
		P99: percentile(s, 0.99), Max: s[len(s)-1], Mean: sum / float64(len(s))}
	if keepQuantiles {
		out.Quantiles = make([]float64, 101)
		for i := range out.Quantiles {
			out.Quantiles[i] = percentile(s, float64(i)/100)
		}
		out.Quantiles[0] = s[0]
	}
	return out
}

// micros converts durations to microseconds.
func micros(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Microsecond)
	}
	return out
}

// millis converts durations to milliseconds.
func millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}
