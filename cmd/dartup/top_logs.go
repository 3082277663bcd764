package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/dartup/dartup/clientsdk"
)

// topLogHistory is how many recent lines the log pane starts with.
const topLogHistory = 100

// logFeed carries the lines of one app's output from the goroutine that
// follows them to the model, in batches: lines wait in a bounded buffer
// (the oldest are dropped, and counted, when the screen falls behind), so
// that a chatty app neither grows memory nor floods the screen's updates.
type logFeed struct {
	gen    int
	app    string
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	pending []clientsdk.LogLine
	dropped int
	note    string
	wake    chan struct{}
}

// topLogsMsg brings lines of feed gen to the model.
type topLogsMsg struct {
	gen     int
	lines   []clientsdk.LogLine
	dropped int
	note    string
}

func newLogFeed(parent context.Context, gen int, app string) *logFeed {
	ctx, cancel := context.WithCancel(parent)
	return &logFeed{gen: gen, app: app, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
}

// add takes one line, cleaned and cut, and wakes the waiting wait.
func (f *logFeed) add(l clientsdk.LogLine) {
	l.Line = cleanText(l.Line, topLineBytes)
	f.mu.Lock()
	if len(f.pending) >= topLogKeep {
		f.pending = f.pending[1:]
		f.dropped++
	}
	f.pending = append(f.pending, l)
	f.note = ""
	f.mu.Unlock()
	f.poke()
}

// setNote says something about the feed (why following stopped).
func (f *logFeed) setNote(note string) {
	f.mu.Lock()
	f.note = note
	f.mu.Unlock()
	f.poke()
}

func (f *logFeed) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// wait is the command that waits for lines and brings them as a
// topLogsMsg; nil once the feed is stopped.
func (f *logFeed) wait() tea.Msg {
	select {
	case <-f.ctx.Done():
		return nil
	case <-f.wake:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	msg := topLogsMsg{gen: f.gen, lines: f.pending, dropped: f.dropped, note: f.note}
	f.pending, f.dropped = nil, 0
	return msg
}

// follow is the command that follows the feed's app's output (its last
// topLogHistory lines first, lifecycle events among them) until the feed
// is stopped. When following fails it says so and starts again a second
// later with new lines only.
func (f *logFeed) follow(c *clientsdk.Client) tea.Cmd {
	return func() tea.Msg {
		opts := clientsdk.LogsOptions{Instance: -1, Lines: topLogHistory, Follow: true, Events: true}
		for f.ctx.Err() == nil {
			err := c.Logs(f.ctx, f.app, opts, f.add)
			if f.ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("the logs ended")
			}
			f.setNote(fmt.Sprintf("following failed: %v; trying again", err))
			opts.Lines, opts.NoHistory = 0, true
			select {
			case <-f.ctx.Done():
			case <-time.After(time.Second):
			}
		}
		return nil
	}
}
