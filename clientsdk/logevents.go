package clientsdk

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamEvent is the LogLine.Stream of a lifecycle event (LogsOptions.Events).
const StreamEvent = "event"

// eventFilter is the events stream's filter for app ("" for every app).
func eventFilter(app string) string {
	if app == "" {
		return EventsSubjects
	}
	return EventFilter(app)
}

// eventLine is a lifecycle event as a log line: "-- restarted: restart 1 --".
func eventLine(e Event) LogLine {
	text := "-- " + string(e.Kind)
	if e.Message != "" {
		text += ": " + e.Message
	}
	return LogLine{App: e.App, Instance: e.Instance, Stream: StreamEvent, Time: e.Time, Line: text + " --"}
}

// wantEvent reports whether an event belongs with the lines of instance
// (-1: all); app-level events (instance -1) always do.
func wantEvent(e Event, instance int) bool {
	return instance < 0 || e.Instance < 0 || e.Instance == instance
}

// eventsSince reads the events of app stored since t, oldest first.
func eventsSince(ctx context.Context, js jetstream.JetStream, app string, instance int, t time.Time) ([]LogLine, error) {
	cons, err := js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventFilter(app)}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t,
		InactiveThreshold: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	pending := uint64(0)
	if ci := cons.CachedInfo(); ci != nil {
		pending = ci.NumPending
	}
	var out []LogLine
	for read := uint64(0); read < pending; {
		batch, err := cons.Fetch(int(min(pending-read, 256)), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return out, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var e Event
			if json.Unmarshal(m.Data(), &e) == nil && wantEvent(e, instance) {
				out = append(out, eventLine(e))
			}
		}
		if got == 0 {
			break
		}
		read += uint64(got)
	}
	return out, nil
}

// mergeByTime merges two lists sorted by time into one.
func mergeByTime(a, b []LogLine) []LogLine {
	out := append(append(make([]LogLine, 0, len(a)+len(b)), a...), b...)
	slices.SortStableFunc(out, func(x, y LogLine) int { return x.Time.Compare(y.Time) })
	return out
}

// followEvents calls emit for each new event of app until ctx ends.
func followEvents(ctx context.Context, js jetstream.JetStream, app string, instance int, emit func(LogLine)) {
	cons, err := js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{eventFilter(app)}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(250*time.Millisecond))
		if err != nil {
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return
			}
			pause(ctx)
			continue
		}
		for m := range batch.Messages() {
			var e Event
			if json.Unmarshal(m.Data(), &e) == nil && wantEvent(e, instance) {
				emit(eventLine(e))
			}
		}
	}
}

// serialized wraps fn so that calls from several goroutines never overlap.
func serialized(fn func(LogLine)) func(LogLine) {
	var mu sync.Mutex
	return func(l LogLine) {
		mu.Lock()
		defer mu.Unlock()
		fn(l)
	}
}
