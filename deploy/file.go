package deploy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// File is a dartup.yaml: the apps (daemons) and functions (lambdas) of one
// service. docs/dartup.schema.json describes the same shape for editors.
type File struct {
	// Service names the project; the apps it declares carry it, and
	// `deploy --prune` removes only apps of this service. Default: the
	// name of the file's folder.
	Service string `yaml:"service"`
	// Apps are daemons by name.
	Apps map[string]*App `yaml:"apps"`
	// Functions are lambdas by name.
	Functions map[string]*Function `yaml:"functions"`
}

// Common are the settings that apps and functions share.
type Common struct {
	// Artifact is what runs: a file (compiled executable, AOT snapshot,
	// .dill, script with #!), a folder with Entry, or a .dart file built
	// with the local Dart SDK; relative to the deploy file's folder.
	Artifact string `yaml:"artifact"`
	// Entry is the program inside a folder artifact.
	Entry string `yaml:"entry"`
	// Runtime is exe, aot, kernel or command (default: detected).
	Runtime string `yaml:"runtime"`
	// Command is the command line for runtime command (instead of Artifact).
	Command []string `yaml:"command"`
	// Interpreter is the dartaotruntime or dart to use on the nodes.
	Interpreter string `yaml:"interpreter"`
	// Cwd is the working directory on the node (absolute).
	Cwd         string            `yaml:"cwd"`
	Args        []string          `yaml:"args"`
	Env         map[string]string `yaml:"env"`
	Constraints map[string]string `yaml:"constraints"`
	// History is how many versions are kept for rollback.
	History int `yaml:"history"`
}

// App is a daemon.
type App struct {
	Common          `yaml:",inline"`
	Instances       int      `yaml:"instances"`
	Port            int      `yaml:"port"`
	HTTP            []string `yaml:"http"`
	HTTPStripPrefix bool     `yaml:"http_strip_prefix"`
	Ready           string   `yaml:"ready"`
	ReadyTimeout    Duration `yaml:"ready_timeout"`
	Health          string   `yaml:"health"`
	HealthInterval  Duration `yaml:"health_interval"`
	HealthFailures  int      `yaml:"health_failures"`
	Parallel        int      `yaml:"parallel"`
	Restart         Restart  `yaml:"restart"`
}

// Restart is a daemon's restart policy.
type Restart struct {
	// Auto restarts the app when it exits (default true).
	Auto          *bool    `yaml:"auto"`
	MaxRestarts   int      `yaml:"max_restarts"`
	MinUptime     Duration `yaml:"min_uptime"`
	Delay         Duration `yaml:"delay"`
	KillTimeout   Duration `yaml:"kill_timeout"`
	StopExitCodes []int    `yaml:"stop_exit_codes"`
}

// Function is a lambda.
type Function struct {
	Common `yaml:",inline"`
	// Handler reaches the worker as _HANDLER: one binary may register
	// several handlers and serve several functions.
	Handler    string    `yaml:"handler"`
	Protocol   string    `yaml:"protocol"`
	Memory     int       `yaml:"memory"`
	Timeout    Duration  `yaml:"timeout"`
	KeepWarm   *Duration `yaml:"keep_warm"`
	MaxWorkers int       `yaml:"max_workers"`
	Queue      int       `yaml:"queue"`
	HTTPEvent  string    `yaml:"http_event"`
	Async      *Async    `yaml:"async"`
	Events     []Event   `yaml:"events"`
}

// Async are a function's settings for async (Event) invocations.
type Async struct {
	Retries      *int       `yaml:"retries"`
	RetryBackoff []Duration `yaml:"retry_backoff"`
	MaxEventAge  Duration   `yaml:"max_event_age"`
	OnSuccess    string     `yaml:"on_success"`
	OnFailure    string     `yaml:"on_failure"`
}

// Event is one trigger of a function: an HTTP route or a schedule.
type Event struct {
	HTTP     *HTTPEvent     `yaml:"http"`
	Schedule *ScheduleEvent `yaml:"schedule"`
}

// ScheduleEvent fires the function as an async invocation: `{cron: "0 */5
// * * * *", time_zone: Europe/Berlin}`, or the short form "@every 30s".
// In serverless.yml, AWS's rate(5 minutes) and cron(0 12 * * ? *) too.
type ScheduleEvent struct {
	Cron     string `yaml:"cron"`
	TimeZone string `yaml:"time_zone"`
	// Rate is serverless.yml's `schedule: {rate: …}` (not in dartup.yaml).
	Rate string `yaml:"rate"`
}

// UnmarshalYAML takes the short form (the expression alone) as well as a
// mapping.
func (e *ScheduleEvent) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		e.Cron = strings.TrimSpace(n.Value)
		return nil
	}
	type plain ScheduleEvent
	return n.Decode((*plain)(e))
}

// HTTPEvent is a route: `{path: /users/{id}, method: GET}`, or the short
// form "GET /users/{id}".
type HTTPEvent struct {
	Path   string `yaml:"path"`
	Method string `yaml:"method"`
}

// UnmarshalYAML takes the short form "METHOD /path" as well as a mapping.
func (e *HTTPEvent) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		method, path, ok := strings.Cut(strings.TrimSpace(n.Value), " ")
		if !ok {
			return fmt.Errorf("line %d: http event %q: want \"METHOD /path\" or {path: /path, method: GET}", n.Line, n.Value)
		}
		e.Method, e.Path = method, strings.TrimSpace(path)
		return nil
	}
	type plain HTTPEvent
	return n.Decode((*plain)(e))
}

// Duration is a duration written "1m30s", "500ms", or a number of seconds.
type Duration time.Duration

// UnmarshalYAML reads "1m30s", "500ms" or seconds as a number.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 30s, 1m or 500ms", n.Line)
	}
	if secs, err := strconv.ParseFloat(n.Value, 64); err == nil {
		if secs < 0 || secs > 1e9 {
			return fmt.Errorf("line %d: %s seconds is out of range", n.Line, n.Value)
		}
		*d = Duration(time.Duration(secs * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (30s, 1m, 500ms, or seconds as a number)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}
