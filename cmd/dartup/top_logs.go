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
	done   <-chan struct{}
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

// newLogFeed makes feed gen for app, and the context that ends when it is
// stopped (for the goroutine that follows the app's output).
func newLogFeed(parent context.Context, gen int, app string) (*logFeed, context.Context) {
	ctx, cancel := context.WithCancel(parent)
	return &logFeed{gen: gen, app: app, done: ctx.Done(), cancel: cancel, wake: make(chan struct{}, 1)}, ctx
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

// topLogCoalesce is how long wait lets lines gather after the first: an
// app that writes without pause updates the screen 20 times a second, not
// once a line.
const topLogCoalesce = 50 * time.Millisecond

// wait is the command that waits for lines and brings them as a
// topLogsMsg; nil once the feed is stopped.
func (f *logFeed) wait() tea.Msg {
	select {
	case <-f.done:
		return nil
	case <-f.wake:
	}
	select {
	case <-f.done:
		return nil
	case <-time.After(topLogCoalesce):
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	msg := topLogsMsg{gen: f.gen, lines: f.pending, dropped: f.dropped, note: f.note}
	f.pending, f.dropped = nil, 0
	return msg
}

// follow is the command that follows the feed's app's output (its last
// topLogHistory lines first, lifecycle events among them) until ctx (the
// feed's, from newLogFeed) ends. When following fails it says so and
// starts again a second later with new lines only.
func (f *logFeed) follow(ctx context.Context, c *clientsdk.Client) tea.Cmd {
	return func() tea.Msg {
		opts := clientsdk.LogsOptions{Instance: -1, Lines: topLogHistory, Follow: true, Events: true}
		for ctx.Err() == nil {
			err := c.Logs(ctx, f.app, opts, f.add)
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("the logs ended")
			}
			f.setNote(fmt.Sprintf("following failed: %v; trying again", err))
			opts.Lines, opts.NoHistory = 0, true
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		return nil
	}
}
