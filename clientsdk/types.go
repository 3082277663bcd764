package clientsdk

import (
	"encoding/json"
	"fmt"
	"time"
)

// Kind says how an app runs: a daemon runs all the time, a lambda on demand.
type Kind string

// App kinds.
const (
	KindDaemon Kind = "daemon"
	KindLambda Kind = "lambda"
)

// Runtime says how the runner starts an artifact.
type Runtime string

// Runtimes.
const (
	// RuntimeExe runs the artifact itself (an ELF executable, e.g. from `dart compile exe`).
	RuntimeExe Runtime = "exe"
	// RuntimeAOT runs the artifact with dartaotruntime (an AOT snapshot).
	RuntimeAOT Runtime = "aot"
	// RuntimeKernel runs the artifact with `dart` (a kernel .dill).
	RuntimeKernel Runtime = "kernel"
	// RuntimeCommand runs AppSpec.Command as given; there is no artifact.
	RuntimeCommand Runtime = "command"
)

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("1.5s") and also reads a number of nanoseconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string like \"5s\" or a number of nanoseconds")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ArtifactRef names a pushed artifact in ArtifactsBucket.
type ArtifactRef struct {
	// Object is the object name in ArtifactsBucket ("sha256/HEX"; see ArtifactObjectName).
	Object string `json:"object"`
	// SHA256 is the hex SHA-256 digest of the artifact's bytes.
	SHA256 string `json:"sha256"`
	// Size is the artifact's length in bytes.
	Size int64 `json:"size"`
	// FileName is the base name of the file that was pushed (informational).
	FileName string `json:"file_name,omitempty"`
}

// RestartPolicy is a daemon's supervision policy, after PM2's.
type RestartPolicy struct {
	// NoAutoRestart disables restarts: an exited instance stays exited.
	NoAutoRestart bool `json:"no_auto_restart,omitempty"`
	// MaxRestarts is how many quick crashes in a row (each up less than
	// MinUptime) put the instance in state errored. Default 16.
	MaxRestarts int `json:"max_restarts,omitempty"`
	// MinUptime is how long an instance must run for its exit not to count as
	// a crash-loop crash. Default 1s.
	MinUptime Duration `json:"min_uptime,omitempty"`
	// RestartDelay is the first backoff delay (after the immediate first
	// restart); it grows ×1.5 up to 15s. Default 100ms.
	RestartDelay Duration `json:"restart_delay,omitempty"`
	// KillTimeout is the grace between SIGTERM and SIGKILL. Default 5s.
	KillTimeout Duration `json:"kill_timeout,omitempty"`
	// StopExitCodes are exit codes after which the instance is not restarted.
	StopExitCodes []int `json:"stop_exit_codes,omitempty"`
}

// Lambda protocols.
const (
	ProtocolRuntimeAPI = "runtime-api"
	ProtocolStdio      = "stdio"
	// ProtocolNATS is the native protocol: workers take events on a
	// private NATS subject and answer callers directly (app.ServeLambda,
	// the Dart package's runLambda; docs/lambdas.md).
	ProtocolNATS = "nats"
)

// HTTP event shapes sent to a lambda invoked through the HTTP gateway.
const (
	HTTPEventAPIGateway = "apigw"
	HTTPEventALB        = "alb"
	HTTPEventRaw        = "raw"
)

// LambdaSpec holds the settings of a lambda.
type LambdaSpec struct {
	// Protocol is ProtocolRuntimeAPI (default), ProtocolStdio or ProtocolNATS.
	Protocol string `json:"protocol,omitempty"`
	// Handler is passed to the worker as _HANDLER.
	Handler string `json:"handler,omitempty"`
	// KeepWarm is the idle time before a warm worker is stopped; 0 stops it
	// after each request. Default 60s (applied by Defaults).
	KeepWarm *Duration `json:"keep_warm,omitempty"`
	// MaxWorkers bounds the workers per node. Default 4.
	MaxWorkers int `json:"max_workers,omitempty"`
	// Queue bounds the requests waiting for a worker per node. Default 64.
	Queue int `json:"queue,omitempty"`
	// Timeout bounds one invocation. Default 30s.
	Timeout Duration `json:"timeout,omitempty"`
	// MemoryMB is advertised as AWS_LAMBDA_FUNCTION_MEMORY_SIZE. Default 128.
	MemoryMB int `json:"memory_mb,omitempty"`
	// HTTPEvent is the event shape for HTTP gateway requests: apigw, alb or
	// raw (default: raw for the stdio protocol, apigw otherwise).
	HTTPEvent string `json:"http_event,omitempty"`
	// Routes are the function's HTTP routes by method and path (a deploy
	// file's `events: - http`). Without any, the gateway routes /NAME and
	// the paths under it, for every method, to the function.
	Routes []FunctionRoute `json:"routes,omitempty"`
	// Async says how async (Event) invocations are retried and where their
	// outcomes go (defaults filled by WithDefaults).
	Async *AsyncSpec `json:"async,omitempty"`
	// Schedules fire the function as async invocations (push --schedule).
	Schedules []Schedule `json:"schedules,omitempty"`
}

// AppSpec is the desired state of one app, stored in AppsBucket.
type AppSpec struct {
	// Name is the app's name; a NATS subject token (see ValidateName).
	Name string `json:"name"`
	// Service names the deploy file (its `service:`) that declares the app,
	// "" for an app pushed by hand; `dartup deploy --prune` removes only
	// apps of its own service that the file no longer declares.
	Service string `json:"service,omitempty"`
	// Kind is KindDaemon or KindLambda.
	Kind Kind `json:"kind"`
	// Runtime says how to start the artifact.
	Runtime Runtime `json:"runtime"`
	// Artifact is the pushed file; nil for RuntimeCommand.
	Artifact *ArtifactRef `json:"artifact,omitempty"`
	// Command is the argv for RuntimeCommand.
	Command []string `json:"command,omitempty"`
	// Interpreter overrides the program that runs aot or kernel artifacts
	// (dartaotruntime or dart) on the runner.
	Interpreter string `json:"interpreter,omitempty"`
	// Cwd is the working directory on the node (absolute; default the app's
	// own directory under the runner's work dir, or a bundle's folder).
	Cwd string `json:"cwd,omitempty"`
	// Bundle, when set, says the artifact is a folder whose Entry runs.
	Bundle *Bundle `json:"bundle,omitempty"`
	// Args are appended to the command line.
	Args []string `json:"args,omitempty"`
	// Env is added to the worker's environment.
	Env map[string]string `json:"env,omitempty"`
	// Instances is the number of daemon instances. Default 1.
	Instances int `json:"instances,omitempty"`
	// Port, when > 0, gives instance i the environment PORT=Port+i. Without
	// it, an app that needs a port (HTTP routes, a tcp or http probe) gets a
	// free one chosen by its runner.
	Port int `json:"port,omitempty"`
	// HTTP are the routes on which the servers' HTTP gateways proxy requests
	// to the daemon's ready instances (push --http).
	HTTP []HTTPRoute `json:"http,omitempty"`
	// HTTPStripPrefix removes the route's prefix from the path before the
	// request goes to an instance.
	HTTPStripPrefix bool `json:"http_strip_prefix,omitempty"`
	// Ready is the readiness probe: "none", "tcp" or "http:/PATH" (see
	// ParseProbe). An instance takes traffic, and a rollout goes on, only once
	// it is ready. Default: tcp for an app with HTTP routes, none otherwise.
	Ready string `json:"ready,omitempty"`
	// ReadyTimeout bounds the wait for readiness. Default 60s.
	ReadyTimeout Duration `json:"ready_timeout,omitempty"`
	// Health is the health check, "tcp" or "http:/PATH"; "" for none. An
	// instance that fails it HealthFailures times in a row is restarted.
	Health string `json:"health,omitempty"`
	// HealthInterval is the time between health checks. Default 10s.
	HealthInterval Duration `json:"health_interval,omitempty"`
	// HealthFailures is how many failed checks in a row restart an
	// instance. Default 3.
	HealthFailures int `json:"health_failures,omitempty"`
	// Parallel is how many instances a rollout (a new revision, a restart)
	// replaces at once. Default 1.
	Parallel int `json:"parallel,omitempty"`
	// RestartedAt is set by `dartup restart`: a new value replaces every
	// instance (a rollout) without a new version.
	RestartedAt time.Time `json:"restarted_at,omitzero"`
	// Stopped is true after `dartup kill`: no instance should run.
	Stopped bool `json:"stopped,omitempty"`
	// Restart is the daemon supervision policy.
	Restart RestartPolicy `json:"restart"`
	// Lambda holds lambda settings; set when Kind is KindLambda.
	Lambda *LambdaSpec `json:"lambda,omitempty"`
	// History is how many of the app's versions are kept, with their
	// artifacts, for `dartup history` and `dartup rollback`. Default 10.
	History int `json:"history,omitempty"`
	// RollbackOf, when set, says this version was made by `dartup rollback`
	// from that earlier version (set by the server).
	RollbackOf uint64 `json:"rollback_of,omitempty"`
	// Constraints restrict placement to nodes whose labels match all of them.
	Constraints map[string]string `json:"constraints,omitempty"`
	// PushedAt is when the spec was pushed (set by the server).
	PushedAt time.Time `json:"pushed_at"`
	// PushedBy says who pushed it, as the client reports it (USER@HOST).
	PushedBy string `json:"pushed_by,omitempty"`
	// TokenNonce is part of the app's worker token (set by the server when
	// the app is created, kept by later pushes): a token of a removed app
	// does not work for a new app of the same name.
	TokenNonce string `json:"token_nonce,omitempty"`
	// Version is the app's own revision number, as users see it: 1 for its
	// first push, one more for each push after (set by the server); kill and
	// start keep it.
	Version uint64 `json:"version,omitempty"`
	// Revision is the spec's revision in AppsBucket (set by the server on
	// reads): it changes on every write of the spec, kill and start included,
	// and is shared by all apps; users see Version.
	Revision uint64 `json:"revision,omitempty"`
}

// Defaults for AppSpec fields left zero.
const (
	DefaultMaxRestarts  = 16
	DefaultMinUptime    = time.Second
	DefaultRestartDelay = 100 * time.Millisecond
	DefaultKillTimeout  = 5 * time.Second
	DefaultKeepWarm     = 60 * time.Second
	DefaultMaxWorkers   = 4
	DefaultQueue        = 64
	DefaultTimeout      = 30 * time.Second
	DefaultMemoryMB     = 128
	DefaultHistory      = 10
)

// WithDefaults returns a copy of s with every zero setting replaced by its default.
func (s AppSpec) WithDefaults() AppSpec {
	if s.Kind == "" {
		s.Kind = KindDaemon
	}
	if s.Instances == 0 {
		s.Instances = 1
	}
	if s.History == 0 {
		s.History = DefaultHistory
	}
	r := &s.Restart
	if r.MaxRestarts == 0 {
		r.MaxRestarts = DefaultMaxRestarts
	}
	if r.MinUptime == 0 {
		r.MinUptime = Duration(DefaultMinUptime)
	}
	if r.RestartDelay == 0 {
		r.RestartDelay = Duration(DefaultRestartDelay)
	}
	if r.KillTimeout == 0 {
		r.KillTimeout = Duration(DefaultKillTimeout)
	}
	s.httpDefaults()
	if s.Kind == KindLambda {
		l := LambdaSpec{}
		if s.Lambda != nil {
			l = *s.Lambda
		}
		if l.Protocol == "" {
			l.Protocol = ProtocolRuntimeAPI
		}
		if l.KeepWarm == nil {
			d := Duration(DefaultKeepWarm)
			l.KeepWarm = &d
		}
		if l.MaxWorkers == 0 {
			l.MaxWorkers = DefaultMaxWorkers
		}
		if l.Queue == 0 {
			l.Queue = DefaultQueue
		}
		if l.Timeout == 0 {
			l.Timeout = Duration(DefaultTimeout)
		}
		if l.MemoryMB == 0 {
			l.MemoryMB = DefaultMemoryMB
		}
		async := AsyncSpec{}
		if l.Async != nil {
			async = *l.Async
		}
		async = async.withDefaults()
		l.Async = &async
		if l.HTTPEvent == "" {
			// A stdio program reads the request body as it is; a Runtime
			// API bootstrap expects API Gateway's event.
			l.HTTPEvent = HTTPEventAPIGateway
			if l.Protocol == ProtocolStdio {
				l.HTTPEvent = HTTPEventRaw
			}
		}
		s.Lambda = &l
	}
	return s
}

// InstanceState is the state of one daemon instance.
type InstanceState string

// Instance states.
const (
	StateStarting InstanceState = "starting" // being fetched or spawned
	StateRunning  InstanceState = "running"  // process alive
	StateBackoff  InstanceState = "backoff"  // exited, waiting to restart
	StateStopping InstanceState = "stopping" // SIGTERM sent
	StateStopped  InstanceState = "stopped"  // stopped on purpose (kill, remove, no-auto-restart exit)
	StateExited   InstanceState = "exited"   // exited and not restarted (stop exit code)
	StateErrored  InstanceState = "errored"  // gave up: crash loop, bad artifact, spawn failure
	// StateLost: the instance's node stopped sending heartbeats; nothing is
	// known to run until another node takes it. Computed by the server for
	// list and info, never written by a runner.
	StateLost InstanceState = "lost"
	// StatePending: no live node can take the instance (LastError says
	// why). Computed by the server, never written by a runner.
	StatePending InstanceState = "pending"
)

// InstanceStatus is the reported status of one instance, stored in StatusBucket.
type InstanceStatus struct {
	App      string        `json:"app"`
	Instance int           `json:"instance"`
	Node     string        `json:"node"`
	State    InstanceState `json:"state"`
	PID      int           `json:"pid,omitempty"`
	Restarts int           `json:"restarts"`
	// StartedAt is when the current process started.
	StartedAt time.Time `json:"started_at,omitzero"`
	// LastExitCode is the last exit code, -1 when killed by a signal.
	LastExitCode *int   `json:"last_exit_code,omitempty"`
	LastSignal   string `json:"last_signal,omitempty"`
	LastError    string `json:"last_error,omitempty"`
	// NextRestartAt is when an instance in backoff starts again.
	NextRestartAt time.Time `json:"next_restart_at,omitzero"`
	// QuickExits counts the instance's exits in a row that came before its
	// min_uptime: a crash loop while it is above 0 and the instance has not
	// run for min_uptime since.
	QuickExits int `json:"quick_exits,omitempty"`
	// CPUPercent and MemoryBytes are sampled from /proc on the runner.
	CPUPercent  float64 `json:"cpu_percent,omitempty"`
	MemoryBytes uint64  `json:"memory_bytes,omitempty"`
	// CPUSeconds is the user and system CPU time of the current worker
	// process (its last sample; it starts again from 0 with a new process).
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
	// Exits counts the instance's worker exits by exit code ("0".."255")
	// or signal name ("SIGKILL"), at most MaxExitKinds kinds ("other"
	// beyond), since its runner took it.
	Exits map[string]uint64 `json:"exits,omitempty"`
	// SpecRevision is the AppSpec revision this instance runs.
	SpecRevision uint64 `json:"spec_revision,omitempty"`
	// Address is where the instance serves (the node's advertised host and
	// its PORT), for an app with a port.
	Address string `json:"address,omitempty"`
	// Ready: the instance passed its readiness probe (or has none) and the
	// gateways route to it.
	Ready bool `json:"ready,omitempty"`
	// FailedRevision is a spec revision whose rollout failed on this
	// instance (its new worker did not get ready; LastError says why): the
	// instance keeps running the revision before, and the rollout stops.
	FailedRevision uint64 `json:"failed_revision,omitempty"`
	// WarmWorkers is, for a lambda's per-node entry (LambdaStatusKey), the
	// number of live workers on that node.
	WarmWorkers int `json:"warm_workers,omitempty"`
	// BusyWorkers and QueuedRequests are, for a lambda's per-node entry,
	// the workers running an invocation and the requests waiting for one
	// when the entry was written.
	BusyWorkers    int `json:"busy_workers,omitempty"`
	QueuedRequests int `json:"queued_requests,omitempty"`
	// Lambda holds a lambda's per-node invocation stats.
	Lambda    *LambdaStats `json:"lambda,omitempty"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// LambdaStats are a lambda's invocation statistics on one node.
type LambdaStats struct {
	Invocations uint64 `json:"invocations"`
	Errors      uint64 `json:"errors"`
	ColdStarts  uint64 `json:"cold_starts"`
	Throttled   uint64 `json:"throttled"`
	Timeouts    uint64 `json:"timeouts"`
	// RefusedReplies counts requests refused because their reply subject
	// was not an inbox (they were not run).
	RefusedReplies uint64   `json:"refused_replies,omitempty"`
	P50            Duration `json:"p50"`
	P99            Duration `json:"p99"`
	// DurationBuckets are the cumulative counts of invocations that took at
	// most each of LambdaDurationBounds (so its last is at most
	// Invocations: the count of the histogram is Invocations), and
	// DurationSum their total in seconds. Throttled requests are not in it.
	DurationBuckets []uint64 `json:"duration_buckets,omitempty"`
	DurationSum     float64  `json:"duration_sum,omitempty"`
}

// LambdaDurationBounds are the upper bounds, in seconds, of the buckets of
// LambdaStats.DurationBuckets (and of the dartup_lambda_duration_seconds
// histogram). An array: a runner counts into a fixed-size one.
var LambdaDurationBounds = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900}

// MaxExitKinds bounds the kinds of exit counted in InstanceStatus.Exits.
const MaxExitKinds = 32

// AppState is dart_up's three-valued summary of an app.
type AppState string

// App states as dart_up prints them.
const (
	AppAlive AppState = "alive"
	AppDead  AppState = "dead"
	AppError AppState = "error"
)

// AppSummary is one row of `dartup list`.
type AppSummary struct {
	Name    string   `json:"name"`
	Kind    Kind     `json:"kind"`
	State   AppState `json:"state"`
	Message string   `json:"message,omitempty"`
	// Desired is the number of instances that should run (0 when killed).
	Desired int `json:"desired"`
	// Running is the number of instances running now.
	Running   int              `json:"running"`
	Instances []InstanceStatus `json:"instances,omitempty"`
	// WarmWorkers is, for lambdas, the number of warm workers over all nodes.
	WarmWorkers int `json:"warm_workers,omitempty"`
}

// ListResponse is the answer of dartup.api.list.
type ListResponse struct {
	Apps []AppSummary `json:"apps"`
}

// NameRequest is the request body of the verbs that take an app name.
type NameRequest struct {
	Name string `json:"name"`
}

// JetStreamUsage is the storage used by the server's JetStream.
type JetStreamUsage struct {
	Memory  uint64 `json:"memory"`
	Storage uint64 `json:"storage"`
	Streams int    `json:"streams"`
	// MaxStorage is the configured storage limit, 0 when none.
	MaxStorage int64 `json:"max_storage,omitempty"`
}

// ServerInfo is the answer of dartup.api.info.
type ServerInfo struct {
	Version       string         `json:"version"`
	ServerVersion string         `json:"server_version"`
	ServerName    string         `json:"server_name"`
	NodeID        string         `json:"node_id"`
	DataDir       string         `json:"data_dir"`
	Started       time.Time      `json:"started"`
	Uptime        Duration       `json:"uptime"`
	NATSURL       string         `json:"nats_url"`
	HTTPURL       string         `json:"http_url,omitempty"`
	Cluster       []string       `json:"cluster,omitempty"`
	RequireAuth   bool           `json:"require_password"`
	JetStream     JetStreamUsage `json:"jetstream"`
	Apps          int            `json:"apps"`
	// RefusedRequests counts the requests this server refused because their
	// reply subject was not an inbox (see IsReplySubject).
	RefusedRequests uint64 `json:"refused_requests"`
	// Disk is the answering server's data disk and store.
	Disk *DiskUsage `json:"disk,omitempty"`
	// StoreDamage lists what this server's check of the apps bucket against
	// its ledger found lost at start, and what it did about each.
	StoreDamage []string `json:"store_damage,omitempty"`
	// JetStreamLeader is the server name of the cluster's JetStream meta
	// leader as the answering server knows it ("" on a single server, or
	// while the cluster elects one).
	JetStreamLeader string `json:"jetstream_leader,omitempty"`
}

// DiskUsage is a server's data disk and JetStream store, as `info` and a
// "disk full" error report them.
type DiskUsage struct {
	// Free and Total are the data disk's free space and size (-1: unknown).
	Free  int64 `json:"free"`
	Total int64 `json:"total"`
	// StoreUsed and StoreMax are what JetStream stores on this server and
	// the most it may (--max-store).
	StoreUsed int64 `json:"store_used"`
	StoreMax  int64 `json:"store_max"`
	// Reserve is the space dartup holds back on the disk for removes and
	// recovery once the disk fills (released when it does).
	Reserve int64 `json:"reserve"`
	// WriteError is the store's last write failure while it lasts ("" when
	// it writes).
	WriteError string `json:"write_error,omitempty"`
}

// EventKind names a lifecycle event.
type EventKind string

// Lifecycle event kinds.
const (
	EventPushed    EventKind = "pushed"
	EventStarted   EventKind = "started"
	EventExited    EventKind = "exited"
	EventCrashed   EventKind = "crashed"
	EventRestarted EventKind = "restarted"
	EventErrored   EventKind = "errored"
	EventPlaced    EventKind = "placed"
	EventColdStart EventKind = "cold-start"
	EventKilled    EventKind = "killed"
	EventStartReq  EventKind = "start"
	EventRemoved   EventKind = "removed"
	// EventReady: an instance passed its readiness probe and takes traffic.
	EventReady EventKind = "ready"
	// EventUnhealthy: an instance failed its health check and is restarted.
	EventUnhealthy EventKind = "unhealthy"
	// EventRolloutFailed: a new revision's worker did not get ready; the
	// instance keeps running the revision before and the rollout stops.
	EventRolloutFailed EventKind = "rollout-failed"
	// EventRestartReq: `dartup restart` asked for a rolling restart.
	EventRestartReq EventKind = "restart"
)

// Event is a lifecycle event in EventsStream.
type Event struct {
	App      string    `json:"app"`
	Kind     EventKind `json:"kind"`
	Instance int       `json:"instance"`
	Node     string    `json:"node,omitempty"`
	Message  string    `json:"message,omitempty"`
	Time     time.Time `json:"time"`
}

// AppInfo is the answer of dartup.api.describe.
type AppInfo struct {
	Spec    AppSpec    `json:"spec"`
	Summary AppSummary `json:"summary"`
	// Versions lists the versions the app keeps for rollback (the
	// revisions record, RevisionsBucket), newest first.
	Versions []AppVersion `json:"versions,omitempty"`
	// Events are the most recent lifecycle events, oldest first.
	Events []Event `json:"events,omitempty"`
	// Schedules are a lambda's schedules with their state and next fire
	// time (as the schedules verb lists them).
	Schedules []ScheduleInfo `json:"schedules,omitempty"`
	// Async describes a lambda's async invocations.
	Async *AsyncStats `json:"async,omitempty"`
}

// AppVersion is one revision of an app's spec.
type AppVersion struct {
	// Version is the app's revision number (AppSpec.Version).
	Version uint64 `json:"version"`
	// Revision is the bucket revision that first stored this version, when
	// known (0, left out, for the versions kept in the revisions record).
	Revision uint64    `json:"revision,omitempty"`
	PushedAt time.Time `json:"pushed_at"`
	PushedBy string    `json:"pushed_by,omitempty"`
	SHA256   string    `json:"sha256,omitempty"`
	// Deleted marked a removal in the apps bucket's history, which older
	// servers listed; the versions kept never hold one.
	Deleted bool `json:"deleted,omitempty"`
}

// Claim is the value of a placement key: which node runs an instance.
type Claim struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// Node is a runner node's entry in NodesBucket.
type Node struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels,omitempty"`
	Address string            `json:"address,omitempty"`
	// Advertise is the host at which the servers' gateways reach the
	// node's instances (runner --advertise).
	Advertise string `json:"advertise,omitempty"`
	Version   string `json:"version"`
	// Instances counts the daemon instances the node runs, those it is
	// still stopping included.
	Instances int `json:"instances"`
	// MaxInstances is the node's capacity; 0 means unbounded.
	MaxInstances int `json:"max_instances,omitempty"`
	// Lambdas is the number of lambdas the node hosts.
	Lambdas int `json:"lambdas"`
	// LambdaNames are the lambdas the node hosts.
	LambdaNames []string `json:"lambda_names,omitempty"`
	// Load1 is the node's one-minute load average.
	Load1    float64   `json:"load1"`
	Draining bool      `json:"draining,omitempty"`
	Started  time.Time `json:"started"`
	LastSeen time.Time `json:"last_seen"`
	// Timeout is the node's own node timeout: it counts as dead once its
	// heartbeats have stopped for this long.
	Timeout Duration `json:"timeout,omitempty"`
	// ConnectedTo is the server the node is connected through now.
	ConnectedTo string `json:"connected_to,omitempty"`
	// Alive is set by the server in answers: the node's last heartbeat, as
	// stored in NodesBucket, is within its Timeout.
	Alive bool `json:"alive"`
	// HeartbeatAge is set by the server in answers: how long ago the node's
	// last heartbeat was stored.
	HeartbeatAge Duration `json:"heartbeat_age,omitempty"`
}

// MatchesConstraints reports whether a node with labels satisfies push
// --constraint k=v (every constraint's label has that value).
func MatchesConstraints(constraints, labels map[string]string) bool {
	for k, v := range constraints {
		if labels[k] != v {
			return false
		}
	}
	return true
}
