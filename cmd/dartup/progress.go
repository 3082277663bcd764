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
