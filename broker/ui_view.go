package broker

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dartup/dartup/clientsdk"
)

// Bounds of what the dashboard sends a page.
const (
	// uiMaxText bounds a message or error shown (an app's exit message, a
	// node's label…): longer ones are cut.
	uiMaxText = 1024
	// uiMaxLineBytes bounds one log line forwarded to a page.
	uiMaxLineBytes = 4096
	// uiMaxInstanceRows bounds the instances in one snapshot.
	uiMaxInstanceRows = 2000
)

// uiSnapshot is what the page shows, sent once a second.
type uiSnapshot struct {
	Time      time.Time    `json:"time"`
	Server    string       `json:"server"`
	Apps      []uiApp      `json:"apps"`
	Instances []uiInstance `json:"instances"`
	// MoreInstances counts the instances left out (uiMaxInstanceRows).
	MoreInstances int        `json:"more_instances,omitempty"`
	Nodes         []uiNode   `json:"nodes"`
	Lambdas       []uiLambda `json:"lambdas"`
	// Error says why the snapshot is empty (the control API did not answer).
	Error string `json:"error,omitempty"`
}

type uiApp struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	Desired int    `json:"desired"`
	Running int    `json:"running"`
}

type uiInstance struct {
	App       string    `json:"app"`
	Instance  int       `json:"instance"`
	Node      string    `json:"node"`
	State     string    `json:"state"`
	Ready     bool      `json:"ready"`
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Restarts  int       `json:"restarts"`
	CPU       float64   `json:"cpu"`
	Memory    uint64    `json:"memory"`
	LastError string    `json:"last_error,omitempty"`
}

type uiNode struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Alive        bool    `json:"alive"`
	HeartbeatMS  int64   `json:"heartbeat_ms"`
	Instances    int     `json:"instances"`
	MaxInstances int     `json:"max_instances"`
	Lambdas      int     `json:"lambdas"`
	Load1        float64 `json:"load1"`
	Draining     bool    `json:"draining"`
	Version      string  `json:"version"`
	Labels       string  `json:"labels,omitempty"`
}

type uiLambda struct {
	Name        string  `json:"name"`
	Invocations uint64  `json:"invocations"`
	Errors      uint64  `json:"errors"`
	ColdStarts  uint64  `json:"cold_starts"`
	Throttled   uint64  `json:"throttled"`
	Timeouts    uint64  `json:"timeouts"`
	P50MS       float64 `json:"p50_ms"`
	P99MS       float64 `json:"p99_ms"`
	Warm        int     `json:"warm"`
	Nodes       int     `json:"nodes"`
}

// uiEvent is a lifecycle event as the page shows it.
type uiEvent struct {
	App      string    `json:"app"`
	Kind     string    `json:"kind"`
	Instance int       `json:"instance"`
	Node     string    `json:"node,omitempty"`
	Message  string    `json:"message,omitempty"`
	Time     time.Time `json:"time"`
}

// uiLine is a log line as the page shows it.
type uiLine struct {
	App      string    `json:"app"`
	Instance int       `json:"instance"`
	Stream   string    `json:"stream"`
	Time     time.Time `json:"time"`
	Line     string    `json:"line"`
}

// uiView turns what list and nodes answered into what the page shows: the
// apps, their daemon instances (at most uiMaxInstanceRows), the nodes and
// the lambdas' stats summed over their nodes (AggregateLambdaStats), with
// every free text cut to uiMaxText. It is pure.
func uiView(server string, apps []clientsdk.AppSummary, nodes []clientsdk.Node, now time.Time) uiSnapshot {
	v := uiSnapshot{Time: now.UTC(), Server: server, Apps: []uiApp{}, Instances: []uiInstance{}, Nodes: []uiNode{}, Lambdas: []uiLambda{}}
	var statuses []clientsdk.InstanceStatus
	for _, a := range apps {
		v.Apps = append(v.Apps, uiApp{Name: a.Name, Kind: string(a.Kind), State: string(a.State), Message: clipText(a.Message, uiMaxText),
			Desired: a.Desired, Running: a.Running})
		statuses = append(statuses, a.Instances...)
		if a.Kind == clientsdk.KindLambda {
			continue
		}
		for _, in := range a.Instances {
			if len(v.Instances) == uiMaxInstanceRows {
				v.MoreInstances++
				continue
			}
			v.Instances = append(v.Instances, uiInstance{App: a.Name, Instance: in.Instance, Node: in.Node, State: string(in.State),
				Ready: in.Ready, PID: in.PID, StartedAt: in.StartedAt, Restarts: in.Restarts, CPU: in.CPUPercent, Memory: in.MemoryBytes,
				LastError: clipText(in.LastError, uiMaxText)})
		}
	}
	for _, n := range nodes {
		v.Nodes = append(v.Nodes, uiNode{ID: n.ID, Name: n.Name, Alive: n.Alive, HeartbeatMS: n.HeartbeatAge.D().Milliseconds(),
			Instances: n.Instances, MaxInstances: n.MaxInstances, Lambdas: n.Lambdas, Load1: n.Load1, Draining: n.Draining,
			Version: clipText(n.Version, 64), Labels: clipText(labelList(n.Labels), uiMaxText)})
	}
	for name, t := range clientsdk.AggregateLambdaStats(statuses) {
		v.Lambdas = append(v.Lambdas, uiLambda{Name: name, Invocations: t.Invocations, Errors: t.Errors, ColdStarts: t.ColdStarts,
			Throttled: t.Throttled, Timeouts: t.Timeouts, P50MS: ms(t.P50.D()), P99MS: ms(t.P99.D()), Warm: t.WarmWorkers, Nodes: t.Nodes})
	}
	slices.SortFunc(v.Lambdas, func(x, y uiLambda) int { return strings.Compare(x.Name, y.Name) })
	return v
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// labelList writes labels as "k=v, k=v", sorted.
func labelList(labels map[string]string) string {
	var out []string
	for k, val := range labels {
		out = append(out, k+"="+val)
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// uiEventOf is e as the page shows it.
func uiEventOf(e clientsdk.Event) uiEvent {
	return uiEvent{App: e.App, Kind: clipText(string(e.Kind), 64), Instance: e.Instance, Node: clipText(e.Node, 128),
		Message: clipText(e.Message, uiMaxText), Time: e.Time}
}

// uiLineOf is l as the page shows it, its text cut to uiMaxLineBytes.
func uiLineOf(l clientsdk.LogLine) uiLine {
	return uiLine{App: l.App, Instance: l.Instance, Stream: l.Stream, Time: l.Time, Line: clipText(l.Line, uiMaxLineBytes)}
}

// clipText cuts s to at most limit bytes (at a character boundary) and says
// how much was cut: "…[123 bytes cut]". Invalid UTF-8 is left for the
// JSON encoder, which writes it as U+FFFD.
func clipText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	n := limit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…[" + strconv.Itoa(len(s)-n) + " bytes cut]"
}

// sseFrame is one Server-Sent Event: its name and v as JSON on one data
// line (JSON strings hold no raw line breaks, so data cannot end the event
// or start another).
func sseFrame(event string, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	out := make([]byte, 0, len(event)+len(b)+16)
	out = append(out, "event: "...)
	out = append(out, event...)
	out = append(out, "\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}
