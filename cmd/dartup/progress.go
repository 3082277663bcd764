package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// progress draws a one-line progress bar on a terminal, only for work large
// enough to take a while (8 MiB and up), at most 10 times a second.
type progress struct {
	out   *os.File
	label string
	tty   bool
	last  time.Time
	drawn bool
}

func newProgress(out *os.File, label string) *progress {
	return &progress{out: out, label: label, tty: isTTY(out)}
}

func (p *progress) update(sent, total int64) {
	if !p.tty || total < 8<<20 {
		return
	}
	if time.Since(p.last) < 100*time.Millisecond && sent < total {
		return
	}
	p.last = time.Now()
	const width = 30
	n := int(float64(width) * float64(sent) / float64(total))
	fmt.Fprintf(p.out, "\r%s [%s%s] %3d%% %s/%s", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n),
		sent*100/total, humanBytes(uint64(sent)), humanBytes(uint64(total)))
	p.drawn = true
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.out)
	}
}

// spinner shows, on a terminal, that a wait goes on: after a second, the
// label and the seconds waited, redrawn until done.
type spinner struct {
	stop chan struct{}
	done func()
}

func newSpinner(label string) *spinner {
	s := &spinner{stop: make(chan struct{})}
	out := os.Stderr
	if !isTTY(out) {
		s.done = func() {}
		return s
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		drawn := false
		for {
			select {
			case <-s.stop:
				if drawn {
					fmt.Fprint(out, "\r\033[K")
				}
				return
			case <-t.C:
				if d := time.Since(start); d >= time.Second {
					fmt.Fprintf(out, "\r%s… %ds", label, int(d.Seconds()))
					drawn = true
				}
			}
		}
	}()
	s.done = func() { close(s.stop); <-finished }
	return s
}
