package main

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
	"github.com/dartup/dartup/clientsdk"
)

// Bounds of what `dartup top` keeps of the apps' output.
const (
	// topLogKeep is how many log lines the log pane keeps (and how many may
	// wait between two screen updates).
	topLogKeep = 500
	// topLineBytes is how much of one line is kept; the screen cuts it
	// again to its width.
	topLineBytes = 1024
	// topRawBytes is how much of a raw line is looked at, escapes included.
	topRawBytes = 4 * topLineBytes
)

// cleanText makes text from an app or a server safe and plain for the
// screen: invalid UTF-8 replaced, ANSI escape sequences (colours, cursor
// moves, titles, hyperlinks) removed, other control and bidi-override
// characters dropped, tabs turned to spaces, and the result cut to at most
// maxBytes bytes (on a character boundary). An app cannot drive the
// terminal of whoever watches it.
func cleanText(s string, maxBytes int) string {
	if plainASCII(s) {
		return cutBytes(s, maxBytes)
	}
	s = cutBytes(s, topRawBytes)
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = ansi.Strip(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteString("    ")
		case isControl(r), isBidiControl(r):
		default:
			b.WriteRune(r)
		}
	}
	return cutBytes(b.String(), maxBytes)
}

// plainASCII reports whether s holds printable ASCII only (nothing to clean).
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// isBidiControl reports the characters that reorder text on terminals that
// honour them (embedding, override and isolate controls).
func isBidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// cutBytes returns the longest prefix of s of at most n bytes that does not
// split a character.
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// fit cuts s (which may hold this program's own styling escapes) to width
// cells, ending it with … when cut.
func fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	return ansi.Truncate(s, width, "…")
}

// pad cuts plain s to width cells and fills it up with spaces, on the left
// when right is set (numbers).
func pad(s string, width int, right bool) string {
	s = fit(s, width)
	gap := strings.Repeat(" ", max(0, width-ansi.StringWidth(s)))
	if right {
		return gap + s
	}
	return s + gap
}

// ageText prints how long ago something happened: tenths of a second
// below 10 s, then as humanDuration.
func ageText(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return humanDuration(d)
}

// latencyText prints a duration for the p50 and p99 columns.
func latencyText(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// rateText prints invocations per second.
func rateText(r float64, known bool) string {
	switch {
	case !known:
		return "-"
	case r >= 100:
		return fmt.Sprintf("%.0f/s", r)
	}
	return fmt.Sprintf("%.1f/s", r)
}

// counterSample is a counter's value when a refresh read it.
type counterSample struct {
	at time.Time
	n  uint64
}

// counterRate is the counter's increase per second over samples (oldest
// first). A value lower than the one before is a reset (the node
// restarted): the increase is then the new value, as Prometheus counts it.
func counterRate(s []counterSample) float64 {
	if len(s) < 2 {
		return 0
	}
	span := s[len(s)-1].at.Sub(s[0].at).Seconds()
	if span <= 0 {
		return 0
	}
	var inc uint64
	for i := 1; i < len(s); i++ {
		if s[i].n >= s[i-1].n {
			inc += s[i].n - s[i-1].n
		} else {
			inc += s[i].n
		}
	}
	return float64(inc) / span
}

// topRateWindow is how far back the invocation rate looks: the runners
// write a lambda's counters at most once a second, so a rate over one
// second would jump between 0 and twice the truth.
const topRateWindow = 5 * time.Second

// rateTracker turns the lambdas' invocation counters, read at each
// refresh, into rates. Each node's counter is followed on its own.
type rateTracker struct {
	window time.Duration
	series map[string][]counterSample // APP/NODE → samples, oldest first
}

func newRateTracker(window time.Duration) *rateTracker {
	return &rateTracker{window: window, series: map[string][]counterSample{}}
}

// observe records the counters of apps read at at and returns each
// lambda's invocations per second over the window (summed over its
// nodes); a lambda seen only once is not in the map yet. The samples kept
// are those in the window plus the one before it, and always the last two.
func (r *rateTracker) observe(apps []clientsdk.AppSummary, at time.Time) map[string]float64 {
	seen := map[string]bool{}
	rates := map[string]float64{}
	for _, a := range apps {
		for _, in := range a.Instances {
			if in.Lambda == nil {
				continue
			}
			key := a.Name + "/" + in.Node
			seen[key] = true
			s := append(r.series[key], counterSample{at: at, n: in.Lambda.Invocations})
			for len(s) > 2 && !s[1].at.After(at.Add(-r.window)) {
				s = s[1:]
			}
			r.series[key] = s
			if len(s) >= 2 {
				rates[a.Name] += counterRate(s)
			}
		}
	}
	for key := range r.series {
		if !seen[key] {
			delete(r.series, key)
		}
	}
	return rates
}

// keepLogs appends add to lines and keeps the last keep of them.
func keepLogs(lines, add []clientsdk.LogLine, keep int) []clientsdk.LogLine {
	lines = append(lines, add...)
	if len(lines) > keep {
		lines = append([]clientsdk.LogLine(nil), lines[len(lines)-keep:]...)
	}
	return lines
}
