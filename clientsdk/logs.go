package clientsdk

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LogLine is one line of worker output.
type LogLine struct {
	App      string    `json:"app"`
	Instance int       `json:"instance"`
	Stream   string    `json:"stream"` // "out" or "err"
	Time     time.Time `json:"time"`
	Line     string    `json:"line"`
}

// LogsOptions selects the lines Logs returns.
type LogsOptions struct {
	// Instance selects one instance; -1 for all.
	Instance int
	// Lines is how many of the most recent lines to return first (0: all kept).
	Lines int
	// Follow keeps delivering new lines until ctx ends.
	Follow bool
	// NoHistory skips the recent lines: only new ones (with Follow).
	NoHistory bool
	// Events interleaves the app's lifecycle events (started, exited,
	// restarted, …) as lines of Stream StreamEvent, "-- KIND: message --".
	Events bool
}

// Logs calls fn for the app's recent output lines (oldest first) and, with
// Follow, for new lines until ctx is done; app "" means every app. It reads
// the logs stream with an ordered consumer. Errors: 400 for an invalid
// name, transport errors.
func (c *Client) Logs(ctx context.Context, app string, o LogsOptions, fn func(LogLine)) error {
	filter := LogsSubjects
	if app != "" {
		if err := ValidateName(app); err != nil {
			return err
		}
		filter = LogFilter(app, o.Instance)
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx) // ends the events' follower with Logs
	defer cancel()
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if !o.Follow {
		cfg.InactiveThreshold = 2 * time.Second // a one-off read: gone soon after
	}
	if o.NoHistory {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	} else if o.Lines > 0 {
		if start := tailStart(ctx, js, cfg.FilterSubjects[0], o.Lines); start > 1 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
		}
	}
	cons, err := js.OrderedConsumer(ctx, LogsStream, cfg)
	if err != nil {
		return err
	}
	var ring []LogLine
	flushed := false
	if o.Events {
		fn = serialized(fn)
	}
	flush := func() {
		if o.Events && len(ring) > 0 {
			// The events since the first line shown, in their place.
			if evs, err := eventsSince(ctx, js, app, o.Instance, ring[0].Time); err == nil {
				ring = mergeByTime(ring, evs)
			}
		}
		if o.Events && o.Follow {
			go followEvents(ctx, js, app, o.Instance, fn)
		}
		for _, l := range ring {
			fn(l)
		}
		ring, flushed = nil, true
	}
	// The history is what was pending when the consumer was made: once that
	// many lines have come, it is all there (no wait for a batch to fill).
	history := uint64(0)
	if ci := cons.CachedInfo(); ci != nil {
		history = ci.NumPending
	}
	read := uint64(0)
	for {
		if !flushed && read >= history {
			flush()
			if !o.Follow {
				return nil
			}
		}
		size := 256
		if !flushed && history-read < 256 {
			size = int(history - read)
		}
		batch, err := cons.Fetch(size, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if flushed && o.Follow && followable(c, err) {
				pause(ctx) // a server restarting or failing over: the ordered consumer resumes after the last line
				continue
			}
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			read++
			l := parseLogMsg(m)
			if flushed {
				fn(l)
				continue
			}
			ring = append(ring, l)
			if o.Lines > 0 && len(ring) > o.Lines {
				ring = ring[1:]
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			if flushed && o.Follow && followable(c, err) {
				pause(ctx)
				continue
			}
			return err
		}
		if got == 0 && !flushed {
			flush()
			if !o.Follow {
				return nil
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// followable reports whether Logs with Follow rides err out: anything but
// a closed connection (a server restarting, a cluster electing leaders).
func followable(c *Client, err error) bool {
	return !errors.Is(err, nats.ErrConnectionClosed) && !c.nc.IsClosed()
}

// pause waits a moment, or until ctx ends.
func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(250 * time.Millisecond):
	}
}

// tailStart returns a stream sequence from which at least the last n lines
// on filter can be read (1: from the start), so that `logs --lines N` does
// not read a busy app's whole history: it looks back from the filter's
// last message, 4 times further at each step, counting the lines after a
// start with a consumer's pending count.
func tailStart(ctx context.Context, js jetstream.JetStream, filter string, n int) uint64 {
	stream, err := js.Stream(ctx, LogsStream)
	if err != nil {
		return 1
	}
	last, err := stream.GetLastMsgForSubject(ctx, filter)
	if err != nil {
		return 1
	}
	for span := uint64(n); ; span *= 4 {
		if span >= last.Sequence {
			return 1
		}
		start := last.Sequence + 1 - span
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, InactiveThreshold: 2 * time.Second,
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start})
		if err != nil {
			return 1
		}
		ci := cons.CachedInfo()
		if ci == nil {
			return 1
		}
		if ci.NumPending >= uint64(n) {
			return start
		}
	}
}

func parseLogMsg(m jetstream.Msg) LogLine {
	l := LogLine{Line: string(m.Data())}
	// dartup.logs.APP.INDEX.STREAM
	parts := strings.Split(m.Subject(), ".")
	if len(parts) == 5 {
		l.App, l.Stream = parts[2], parts[4]
		l.Instance, _ = strconv.Atoi(parts[3])
	}
	if md, err := m.Metadata(); err == nil {
		l.Time = md.Timestamp
	}
	return l
}
