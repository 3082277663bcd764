package broker

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds and pace of the dashboard's streams.
const (
	// uiMaxStreams bounds the open streams of a server, snapshot and log
	// streams together; one more is refused with 503 and Retry-After.
	uiMaxStreams = 32
	// uiSnapshotEvery is the pace of snapshots while a page watches.
	uiSnapshotEvery = time.Second
	// uiEventsKept is how many recent events a page gets when it connects.
	uiEventsKept = 100
	// uiQueue is how many frames may wait for one slow page; a page that
	// falls further behind is cut off (its browser reconnects).
	uiQueue = 64
	// uiHeartbeat is the longest silence on a stream (a comment line
	// keeps proxies from closing it).
	uiHeartbeat = 15 * time.Second
	// uiWriteTimeout bounds one write to a page.
	uiWriteTimeout = 10 * time.Second
	// uiRetry is the reconnection delay the page's EventSource is given.
	uiRetry = 2 * time.Second
)

// uiHub sends every watching page the same snapshots and events: one
// producer for all of them, running only while a page watches.
type uiHub struct {
	u *ui
	// streams counts the open streams of both kinds (uiMaxStreams).
	streams atomic.Int32

	mu      sync.Mutex
	clients map[*uiClient]struct{}
	// gen numbers the producers' runs: frames of a stopped run are dropped.
	gen  uint64
	stop context.CancelFunc
	// last is the latest snapshot frame, events the latest event frames
	// (at most uiEventsKept, oldest first): what a new page gets first.
	last   []byte
	events [][]byte
}

// uiClient is one page on the snapshot stream.
type uiClient struct {
	frames chan []byte
	// gone is closed when the hub cut the page off for being slow.
	gone chan struct{}
}

func newUIHub(u *ui) *uiHub { return &uiHub{u: u, clients: map[*uiClient]struct{}{}} }

// acquire takes one of the uiMaxStreams stream slots; false when none is free.
func (h *uiHub) acquire() bool {
	if h.streams.Add(1) > uiMaxStreams {
		h.streams.Add(-1)
		return false
	}
	return true
}

func (h *uiHub) release() { h.streams.Add(-1) }

// refuseBusy answers 503 when every stream slot is taken.
func refuseBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, "TooManyStreams", "the dashboard already has its most open streams (pages or log tails) on this server; close a page and try again")
}

// serve is GET /ui/api/stream: snapshots ("snapshot") and lifecycle events
// ("event") as Server-Sent Events.
func (h *uiHub) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		return // no stream to hold open for a HEAD
	}
	if !h.acquire() {
		refuseBusy(w)
		return
	}
	defer h.release()
	s := startSSE(w)
	c := h.join()
	defer h.leave(c)
	s.pump(h.u.streamContext(r), c.frames, c.gone, nil)
}

// join adds a page, gives it the latest snapshot and events, and starts
// the producers for the first page.
func (h *uiHub) join() *uiClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := &uiClient{frames: make(chan []byte, uiQueue+uiEventsKept+1), gone: make(chan struct{})}
	for _, e := range h.events {
		c.frames <- e
	}
	if h.last != nil {
		c.frames <- h.last
	}
	h.clients[c] = struct{}{}
	if len(h.clients) == 1 {
		h.gen++
		ctx, cancel := context.WithCancel(h.u.ctx)
		h.stop, h.last, h.events = cancel, nil, nil
		go h.snapshots(ctx, h.gen)
		go h.followEvents(ctx, h.gen)
	}
	return c
}

// leave removes a page, and stops the producers after the last one.
func (h *uiHub) leave(c *uiClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
	if len(h.clients) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

// publish sends frame to every page of run gen; a snapshot replaces the
// last one, an event joins the recent ones. A page whose queue is full is
// cut off.
func (h *uiHub) publish(gen uint64, frame []byte, event bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.gen {
		return
	}
	if event {
		h.events = append(h.events, frame)
		if len(h.events) > uiEventsKept {
			h.events = h.events[len(h.events)-uiEventsKept:]
		}
	} else {
		h.last = frame
	}
	for c := range h.clients {
		select {
		case c.frames <- frame:
		default:
			delete(h.clients, c)
			close(c.gone)
		}
	}
}

// snapshots publishes a snapshot every uiSnapshotEvery until ctx ends.
func (h *uiHub) snapshots(ctx context.Context, gen uint64) {
	t := time.NewTicker(uiSnapshotEvery)
	defer t.Stop()
	for {
		h.publish(gen, sseFrame("snapshot", h.u.snapshot(ctx)), false)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// snapshot asks the control API (list and nodes, as `dartup list` and
// `dartup nodes` do) what runs.
func (u *ui) snapshot(ctx context.Context) uiSnapshot {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := time.Now()
	apps, err := u.client.List(ctx)
	if err != nil {
		return uiSnapshot{Time: now.UTC(), Server: u.g.b.cfg.ServerName, Error: clipText("list: "+err.Error(), uiMaxText)}
	}
	nodes, err := u.client.Nodes(ctx)
	if err != nil {
		return uiSnapshot{Time: now.UTC(), Server: u.g.b.cfg.ServerName, Error: clipText("nodes: "+err.Error(), uiMaxText)}
	}
	return uiView(u.g.b.cfg.ServerName, apps, nodes, now)
}

// followEvents publishes the last uiEventsKept lifecycle events, then each
// new one, until ctx ends; after an error it goes on after the last event
// it read.
func (h *uiHub) followEvents(ctx context.Context, gen uint64) {
	var next uint64 // the stream sequence to read from; 0: the last few
	for ctx.Err() == nil {
		err := h.readEvents(ctx, gen, &next)
		if ctx.Err() != nil {
			return
		}
		h.u.logger.Debug("dashboard: reading events again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// readEvents reads the events stream from *next (or its last uiEventsKept
// events) until ctx ends or reading fails, advancing *next.
func (h *uiHub) readEvents(ctx context.Context, gen uint64, next *uint64) error {
	stream, err := h.u.g.b.js.Stream(ctx, clientsdk.EventsStream)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: 10 * time.Second}
	start := *next
	if last := stream.CachedInfo().State.LastSeq; start == 0 && last > uiEventsKept {
		start = last - uiEventsKept + 1
	}
	if start > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			if md, err := m.Metadata(); err == nil {
				*next = md.Sequence.Stream + 1
			}
			var e clientsdk.Event
			if json.Unmarshal(m.Data(), &e) == nil {
				h.publish(gen, sseFrame("event", uiEventOf(e)), true)
			}
		}
	}
	return ctx.Err()
}

// streamContext ends when the page goes or the gateway shuts down.
func (u *ui) streamContext(r *http.Request) context.Context {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(u.ctx, cancel)
	context.AfterFunc(ctx, func() { stop(); cancel() })
	return ctx
}

// sse writes Server-Sent Events to one page.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startSSE answers 200 with an event stream.
func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx in front: do not buffer
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	_ = s.write([]byte("retry: " + strconv.Itoa(int(uiRetry/time.Millisecond)) + "\n\n"))
	return s
}

// write sends b and flushes it, within uiWriteTimeout.
func (s *sse) write(b []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(uiWriteTimeout))
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// pump writes frames until ctx ends, a write fails, or gone is closed
// (after the frames already queued). every, when not nil, is called each
// second and may return a frame to send; a comment is sent after
// uiHeartbeat of silence.
func (s *sse) pump(ctx context.Context, frames <-chan []byte, gone <-chan struct{}, every func() []byte) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	quiet := time.Now()
	for {
		var out []byte
		select {
		case <-ctx.Done():
			return
		case out = <-frames:
		case <-gone:
			for {
				select {
				case f := <-frames:
					if s.write(f) != nil {
						return
					}
				default:
					return
				}
			}
		case <-tick.C:
			if every != nil {
				out = every()
			}
			if out == nil && time.Since(quiet) >= uiHeartbeat {
				out = []byte(": keep-alive\n\n")
			}
		}
		if out == nil {
			continue
		}
		if s.write(out) != nil {
			return
		}
		quiet = time.Now()
	}
}
