package clientsdk

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

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
}

// Logs calls fn for the app's recent output lines (oldest first) and, with
// Follow, for new lines until ctx is done. It reads the logs stream with an
// ordered consumer. Errors: 400 for an invalid name, transport errors.
func (c *Client) Logs(ctx context.Context, app string, o LogsOptions, fn func(LogLine)) error {
	if err := ValidateName(app); err != nil {
		return err
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, LogsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{LogFilter(app, o.Instance)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return err
	}
	var ring []LogLine
	flushed := false
	flush := func() {
		for _, l := range ring {
			fn(l)
		}
		ring, flushed = nil, true
	}
	for {
		if !flushed {
			if ci := cons.CachedInfo(); ci != nil && ci.NumPending == 0 {
				flush()
				if !o.Follow {
					return nil
				}
			}
		}
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
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
