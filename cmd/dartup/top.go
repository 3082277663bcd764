package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

// The bounds of top --interval.
const (
	topMinInterval = 200 * time.Millisecond
	topMaxInterval = time.Minute
)

type topFlags struct {
	conn     connFlags
	interval time.Duration
}

func newTopCmd() *cobra.Command {
	f := &topFlags{}
	cmd := &cobra.Command{
		Use:   "top [NAME]",
		Short: "Watch the apps, lambdas and nodes live, with the selected app's output (as pm2 monit)",
		Long: `A live view in the terminal, refreshed every --interval: each daemon's
instances with state, node, pid, uptime, restarts, CPU and memory; each
lambda's invocations per second, calls, errors, cold starts, p50 and p99
and warm workers; the nodes with their last heartbeat; and, below, the
output of the selected app as 'dartup logs -f NAME' prints it.

Keys: up/down (or k/j) choose the app, ? shows help, q or ctrl+c quits.
When the server cannot be reached, top says so and keeps trying.

top needs a terminal. In a script, use 'dartup list --wide' (or --json),
'dartup nodes' and 'dartup logs NAME'.`,
		Example: `  dartup top                 # every app, refreshed every second
  dartup top web             # start with web's output in the log pane
  dartup top --interval 5s   # refresh less often`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.interval < topMinInterval || f.interval > topMaxInterval {
				return usageErr(fmt.Errorf("--interval is between %s and %s, not %s", topMinInterval, topMaxInterval, f.interval))
			}
			selected := ""
			if len(args) == 1 {
				if err := clientsdk.ValidateName(args[0]); err != nil {
					return usageErr(err)
				}
				selected = args[0]
			}
			if !isTTY(os.Stdout) {
				return usageErr(errors.New("dartup top draws on a terminal, and standard output is not one; for a snapshot use `dartup list --wide` (or `dartup list --json`), `dartup nodes` and `dartup logs NAME`"))
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				return runTop(ctx, c, f.interval, selected)
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().DurationVar(&f.interval, "interval", time.Second, fmt.Sprintf("how often to refresh (%s to %s)", topMinInterval, topMaxInterval))
	return cmd
}

// runTop runs the live view until the user quits it.
func runTop(ctx context.Context, c *clientsdk.Client, interval time.Duration, selected string) error {
	if selected != "" {
		apps, err := c.List(ctx)
		if err != nil {
			return err
		}
		if _, err := onlyNamed(apps, []string{selected}); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := newTopModel(interval, selected, lipglossPaint(lipgloss.NewRenderer(os.Stdout)))
	m.fetch = func() topDataMsg { return fetchTop(ctx, c, interval) }
	m.follow = func(gen int, app string) (*logFeed, tea.Cmd) {
		feed, fctx := newLogFeed(ctx, gen, app)
		return feed, feed.follow(fctx, c)
	}
	_, err := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx), tea.WithOutput(os.Stdout)).Run()
	m.stopFeed()
	if errors.Is(err, tea.ErrInterrupted) || (errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil) {
		return nil // SIGINT from outside, or the command's context ended
	}
	return err
}

// fetchTop reads the apps and the nodes once, within twice the interval
// (2 s to 10 s). While the connection is down it does not ask: nats.go
// reconnects by itself, and the error says so at once.
func fetchTop(ctx context.Context, c *clientsdk.Client, interval time.Duration) topDataMsg {
	msg := topDataMsg{at: time.Now()}
	nc := c.Conn()
	msg.server, msg.reconnecting = nc.ConnectedUrlRedacted(), !nc.IsConnected()
	if msg.reconnecting {
		msg.err = errors.New("lost the connection to the server; reconnecting (is `dartup serve` running?)")
		msg.took = time.Since(msg.at)
		return msg
	}
	ctx, cancel := context.WithTimeout(ctx, min(max(2*interval, 2*time.Second), 10*time.Second))
	defer cancel()
	if msg.apps, msg.err = c.List(ctx); msg.err == nil {
		msg.nodes, msg.err = c.Nodes(ctx)
	}
	msg.took = time.Since(msg.at)
	return msg
}

// lipglossPaint colours the screen's tones with lipgloss, as the terminal
// of r allows (none with NO_COLOR).
func lipglossPaint(r *lipgloss.Renderer) topPaint {
	styles := map[tone]lipgloss.Style{
		toneGood:     r.NewStyle().Foreground(lipgloss.Color("2")),
		toneWarn:     r.NewStyle().Foreground(lipgloss.Color("3")),
		toneBad:      r.NewStyle().Foreground(lipgloss.Color("1")),
		toneDim:      r.NewStyle().Faint(true),
		toneTitle:    r.NewStyle().Bold(true),
		toneSelected: r.NewStyle().Reverse(true),
	}
	return func(t tone, s string) string {
		if st, ok := styles[t]; ok {
			return st.Render(s)
		}
		return s
	}
}
