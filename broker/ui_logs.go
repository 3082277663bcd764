package broker

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// Bounds of a log tail on the dashboard.
const (
	// uiLogHistory is how many recent lines a tail starts with.
	uiLogHistory = 200
	// uiLogRate and uiLogBurst bound the lines forwarded to one page: a
	// burst of uiLogBurst (the history fits), then uiLogRate a second; the
	// others are counted and the page told how many were left out.
	uiLogRate  = 100
	uiLogBurst = 400
)

// lineBudget is a token bucket of log lines: rate a second, up to burst.
type lineBudget struct {
	tokens float64
	last   time.Time
}

// take reports whether a line may go at now, and spends its token. It is
// pure but for the budget it is given.
func (b *lineBudget) take(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(burst, b.tokens+d*rate)
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// logs is GET /ui/api/logs?app=NAME[&instance=N]: the app's last
// uiLogHistory lines and then each new one ("line"), read as `dartup logs
// -f` reads them (clientsdk's Logs), each cut to uiMaxLineBytes, at most
// uiLogRate a second after a burst; "dropped" says how many were left out.
func (u *ui) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	app := q.Get("app")
	if err := clientsdk.ValidateName(app); err != nil {
		writeAPIError(w, err)
		return
	}
	instance := -1
	if s := q.Get("instance"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n >= clientsdk.MaxInstances {
			writeError(w, http.StatusBadRequest, "BadRequest", "instance must be a number from 0 to "+strconv.Itoa(clientsdk.MaxInstances-1))
			return
		}
		instance = n
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		return // no stream to hold open for a HEAD
	}
	if !u.hub.acquire() {
		refuseBusy(w)
		return
	}
	defer u.hub.release()
	s := startSSE(w)
	ctx, cancel := context.WithCancel(u.streamContext(r))
	frames, done := make(chan []byte, uiQueue), make(chan struct{})
	var dropped atomic.Int64
	var budget lineBudget
	go func() {
		defer close(done)
		err := u.client.Logs(ctx, app, clientsdk.LogsOptions{Instance: instance, Lines: uiLogHistory, Follow: true}, func(l clientsdk.LogLine) {
			if !budget.take(time.Now(), uiLogRate, uiLogBurst) {
				dropped.Add(1)
				return
			}
			select {
			case frames <- sseFrame("line", uiLineOf(l)):
			default:
				dropped.Add(1) // the page reads slower than the budget
			}
		})
		if err != nil && ctx.Err() == nil {
			select { // the page hears why its tail ended (unless it is that far behind)
			case frames <- sseFrame("failed", map[string]string{"error": clipText(err.Error(), uiMaxText)}):
			default:
			}
		}
	}()
	s.pump(ctx, frames, done, func() []byte {
		if n := dropped.Swap(0); n > 0 {
			return sseFrame("dropped", map[string]int64{"count": n})
		}
		return nil
	})
	cancel()
	<-done
}
