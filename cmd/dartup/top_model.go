package main

import (
	"slices"
	"strconv"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/dartup/dartup/clientsdk"
)

// topSettle is how long the selection must rest before the log pane
// follows the new app: scrolling through many apps does not open a
// consumer for each.
const topSettle = 250 * time.Millisecond

// topDataMsg is one refresh: the apps and nodes (or why not), when it
// started and how long it took, and the connection's state.
type topDataMsg struct {
	apps         []clientsdk.AppSummary
	nodes        []clientsdk.Node
	err          error
	at           time.Time
	took         time.Duration
	server       string
	reconnecting bool
}

// topTickMsg asks for the next refresh.
type topTickMsg struct{}

// topSettledMsg says selection gen has rested for topSettle.
type topSettledMsg struct{ gen int }

// topModel is the bubbletea model of `dartup top`. It only keeps state and
// turns messages into it; what the screen shows is renderTop's, the I/O
// happens in the commands fetch and follow return.
type topModel struct {
	screen   topScreen
	order    []string
	rates    *rateTracker
	paint    topPaint
	interval time.Duration
	// fetch reads the apps and nodes; follow makes feed gen of app and the
	// command that feeds it with the app's output.
	fetch  func() topDataMsg
	follow func(gen int, app string) (*logFeed, tea.Cmd)
	// settle counts selection changes; feed follows the log pane's app.
	settle int
	feed   *logFeed
}

func newTopModel(interval time.Duration, selected string, paint topPaint) *topModel {
	return &topModel{interval: interval, paint: paint, rates: newRateTracker(max(topRateWindow, interval)),
		screen: topScreen{Interval: interval, Selected: selected, Now: time.Now()}}
}

// Init asks for the first refresh.
func (m *topModel) Init() tea.Cmd { return m.refresh }

// refresh is the command that reads the apps and nodes once.
func (m *topModel) refresh() tea.Msg {
	if m.fetch == nil {
		return nil
	}
	return m.fetch()
}

// Update applies a message.
func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.screen.Width, m.screen.Height = msg.Width, msg.Height
	case tea.KeyMsg:
		return m, m.onKey(msg.String())
	case topDataMsg:
		return m, m.onData(msg)
	case topTickMsg:
		return m, m.refresh
	case topSettledMsg:
		if msg.gen == m.settle {
			return m, m.followSelected()
		}
	case topLogsMsg:
		if m.feed == nil || msg.gen != m.feed.gen {
			return m, nil
		}
		m.screen.Logs = keepLogs(m.screen.Logs, msg.lines, topLogKeep)
		m.screen.LogNote = msg.note
		if msg.dropped > 0 {
			m.screen.LogNote = skippedNote(msg.dropped)
		}
		return m, m.feed.wait
	}
	return m, nil
}

// View renders the screen.
func (m *topModel) View() string { return renderTop(m.screen, m.paint) }

// onKey handles a key: quit, help, or a move of the selection.
func (m *topModel) onKey(key string) tea.Cmd {
	if key == "q" || key == "ctrl+c" {
		m.stopFeed()
		return tea.Quit
	}
	if m.screen.Help {
		m.screen.Help = false
		return nil
	}
	moves := map[string]int{"up": -1, "k": -1, "down": 1, "j": 1, "pgup": -10, "pgdown": 10, "home": -1 << 30, "g": -1 << 30, "end": 1 << 30, "G": 1 << 30}
	if key == "?" {
		m.screen.Help = true
		return nil
	}
	d, ok := moves[key]
	if !ok {
		return nil
	}
	next := moveSelection(m.order, m.screen.Selected, d)
	if next == m.screen.Selected {
		return nil
	}
	m.screen.Selected = next
	m.settle++
	gen := m.settle
	return tea.Tick(topSettle, func(time.Time) tea.Msg { return topSettledMsg{gen: gen} })
}

// onData takes a refresh's answer and schedules the next refresh one
// interval after this one started.
func (m *topModel) onData(msg topDataMsg) tea.Cmd {
	s := &m.screen
	s.Now = msg.at.Add(msg.took)
	if msg.server != "" {
		s.Server = msg.server
	}
	s.Reconnecting = msg.reconnecting
	next := tea.Tick(max(0, m.interval-msg.took), func(time.Time) tea.Msg { return topTickMsg{} })
	if msg.err != nil {
		if s.Err == "" {
			s.ErrAt = msg.at
		}
		s.Err = msg.err.Error()
		return next
	}
	s.Err, s.Loaded, s.UpdatedAt = "", true, msg.at
	s.Apps, s.Nodes = msg.apps, msg.nodes
	s.Rates = m.rates.observe(msg.apps, msg.at)
	order := topOrder(msg.apps)
	before := s.Selected
	s.Selected = reselect(m.order, order, s.Selected)
	m.order = order
	if m.feed == nil || s.Selected != before {
		// The first app shown, or the selected app went: follow at once (a
		// selection moved by keys follows once it settles).
		return tea.Batch(next, m.followSelected())
	}
	return next
}

// followSelected points the log pane at the selected app (nothing when it
// shows that app already).
func (m *topModel) followSelected() tea.Cmd {
	app := m.screen.Selected
	if m.feed != nil && m.feed.app == app {
		return nil
	}
	m.stopFeed()
	m.screen.LogApp, m.screen.Logs, m.screen.LogNote = app, nil, ""
	if app == "" || m.follow == nil {
		return nil
	}
	gen := 1
	if m.feed != nil {
		gen = m.feed.gen + 1
	}
	feed, follow := m.follow(gen, app)
	m.feed = feed
	return tea.Batch(follow, feed.wait)
}

// stopFeed stops following the log pane's app.
func (m *topModel) stopFeed() {
	if m.feed != nil {
		m.feed.cancel()
	}
}

// moveSelection moves the selection delta places in order, stopping at
// either end; a selection not in order starts from the first app.
func moveSelection(order []string, cur string, delta int) string {
	if len(order) == 0 {
		return ""
	}
	i := slices.Index(order, cur)
	if i < 0 {
		return order[0]
	}
	return order[min(max(i+delta, 0), len(order)-1)]
}

// reselect keeps the selected app after a refresh; when it is gone, the
// app now in its place (or the last one) is selected; with none selected,
// the first.
func reselect(prev, order []string, cur string) string {
	if len(order) == 0 {
		return ""
	}
	if slices.Contains(order, cur) {
		return cur
	}
	if i := slices.Index(prev, cur); i >= 0 {
		return order[min(i, len(order)-1)]
	}
	return order[0]
}

// skippedNote says how many lines the log pane skipped.
func skippedNote(n int) string {
	if n == 1 {
		return "1 line skipped: the app writes faster than the screen shows"
	}
	return strconv.Itoa(n) + " lines skipped: the app writes faster than the screen shows"
}
