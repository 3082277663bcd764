package clientsdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxNameLength bounds app names, which become subject tokens and KV keys.
const MaxNameLength = 64

// ValidateName checks that name can be an app name: 1 to 64 characters from
// [A-Za-z0-9_-], starting with a letter or digit. Names become NATS subject
// tokens ("lambda.NAME") and KV keys, so '.', '*', '>', spaces and the like are
// refused. It returns an *Error with code 400 saying what is wrong.
func ValidateName(name string) error {
	switch {
	case name == "":
		return Errorf(400, "InvalidName", "app name is empty; give one with --name")
	case len(name) > MaxNameLength:
		return Errorf(400, "InvalidName", "app name is %d characters long; the limit is %d", len(name), MaxNameLength)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_'))
		if !ok {
			return Errorf(400, "InvalidName", "app name %q has %q at position %d; use letters, digits, '-' and '_' (starting with a letter or digit)", name, r, i+1)
		}
	}
	return nil
}

// TokenFrom makes a valid name (see ValidateName) out of s: characters other
// than letters, digits, '-' and '_' become '-', leading '-' and '_' go, and
// it is cut to MaxNameLength; fallback when nothing is left. It turns host
// and file names into node ids, server names and default app names.
func TokenFrom(s, fallback string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, s)
	s = strings.TrimLeft(s, "-_")
	if len(s) > MaxNameLength {
		s = s[:MaxNameLength]
	}
	if s == "" {
		return fallback
	}
	return s
}

// Validate checks a spec after WithDefaults: the name, kind, runtime and
// artifact, then every bound (ValidateBounds). It returns an *Error 400
// ("InvalidName" or TypeInvalidSpec) naming the first problem found: the
// field, its value and what is allowed.
func (s *AppSpec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	c := specCheck{app: s.Name}
	if s.Service != "" {
		if err := ValidateName(s.Service); err != nil {
			return c.bad("service", quote(s.Service), "a name of letters, digits, '-' and '_'")
		}
	}
	switch s.Kind {
	case KindDaemon, KindLambda:
	default:
		return c.bad("kind", quote(string(s.Kind)), "daemon or lambda")
	}
	if err := c.runtime(s); err != nil {
		return err
	}
	return s.ValidateBounds()
}

// ValidateBounds checks every count, duration and string of s (after
// WithDefaults) against the bounds in limits.go. It is the part of Validate
// that needs neither a name nor an artifact, so that `dartup push` and
// Client.Push refuse a spec before uploading anything. It returns an *Error
// 400 TypeInvalidSpec naming the field, its value and the allowed range.
func (s *AppSpec) ValidateBounds() error {
	c := specCheck{app: s.Name}
	if err := c.intRange("instances", s.Instances, 1, MaxInstances); err != nil {
		return err
	}
	if err := c.intRange("history", s.History, 1, MaxHistory); err != nil {
		return err
	}
	if err := c.port(s.Port, s.Instances); err != nil {
		return err
	}
	if err := c.commandLine(s); err != nil {
		return err
	}
	if err := c.restart(&s.Restart); err != nil {
		return err
	}
	switch {
	case s.Kind == KindLambda && s.Lambda == nil:
		return c.bad("lambda", "missing", "lambda settings for kind lambda (WithDefaults fills them)")
	case s.Kind == KindLambda:
		if err := c.lambda(s.Lambda); err != nil {
			return err
		}
	case s.Lambda != nil:
		return c.bad("lambda", "set", "no lambda settings for kind "+quote(string(s.Kind))+"; push it as a lambda")
	}
	if err := c.daemonHTTP(s); err != nil {
		return err
	}
	return c.constraints(s.Constraints)
}

// specCheck builds the errors of Validate for one app.
type specCheck struct{ app string }

// specFlags names the `dartup push` flag of each spec field, for messages.
var specFlags = map[string]string{
	"runtime": "--runtime", "instances": "--instances", "port": "--port", "command": "the command line after --",
	"args": "--arg", "env": "--env", "interpreter": "--dart-aot-runtime", "constraints": "--constraint",
	"restart.max_restarts": "--max-restarts", "restart.min_uptime": "--min-uptime",
	"restart.restart_delay": "--restart-delay", "restart.kill_timeout": "--kill-timeout",
	"restart.stop_exit_codes": "--stop-exit-code", "lambda.protocol": "--protocol", "lambda.handler": "--handler",
	"lambda.keep_warm": "--keep-warm", "lambda.max_workers": "--max-workers", "lambda.queue": "--queue",
	"lambda.timeout": "--timeout", "lambda.memory_mb": "--memory", "lambda.http_event": "--http-event",
	"lambda.async.retries": "--retries", "lambda.async.retry_backoff": "--retry-backoff", "lambda.async.max_event_age": "--max-event-age",
	"lambda.async.on_success": "--on-success", "lambda.async.on_failure": "--on-failure", "lambda.schedules": "--schedule",
	"http": "--http", "ready": "--ready", "ready_timeout": "--ready-timeout", "health": "--health",
	"health_interval": "--health-interval", "health_failures": "--health-failures", "parallel": "--parallel", "history": "--history",
}

// bad returns the *Error 400 "app APP: FIELD (FLAG) is VALUE; allowed ALLOWED".
func (c specCheck) bad(field, value, allowed string) *Error {
	base, _, _ := strings.Cut(field, "[")
	if f := specFlags[base]; f != "" {
		field += " (" + f + ")"
	}
	prefix := ""
	if c.app != "" {
		prefix = "app " + c.app + ": "
	}
	return Errorf(400, TypeInvalidSpec, "%s%s is %s; allowed %s", prefix, field, value, allowed)
}

func (c specCheck) intRange(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return c.bad(field, strconv.Itoa(v), fmt.Sprintf("%d to %d", lo, hi))
	}
	return nil
}

func (c specCheck) durRange(field string, v Duration, lo, hi time.Duration) error {
	if v.D() < lo || v.D() > hi {
		return c.bad(field, v.D().String(), fmt.Sprintf("%s to %s", lo, hi))
	}
	return nil
}

// str checks a string that reaches a process or a file name: at most max
// bytes and no NUL byte (exec cannot pass one, and would fail or cut it).
func (c specCheck) str(field, v string, max int) error {
	if len(v) > max {
		return c.bad(field, quote(v), fmt.Sprintf("at most %d bytes", max))
	}
	if i := strings.IndexByte(v, 0); i >= 0 {
		return c.bad(field, quote(v), fmt.Sprintf("no NUL byte (one is at offset %d)", i))
	}
	return nil
}

// quote quotes v for a message, cut to its first 40 bytes with its length
// when longer.
func quote(v string) string {
	const show = 40
	if len(v) <= show {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(v[:show]), len(v))
}

func (c specCheck) runtime(s *AppSpec) error {
	switch s.Runtime {
	case RuntimeExe, RuntimeAOT, RuntimeKernel:
		return c.artifact(s.Runtime, s.Artifact)
	case RuntimeCommand:
		if len(s.Command) == 0 || s.Command[0] == "" {
			return c.bad("command", quote(strings.Join(s.Command, " ")), "a command line for runtime command (dartup push --name NAME -- ./bin/app --flag)")
		}
		if s.Artifact != nil {
			return c.bad("artifact", quote(s.Artifact.Object), "none for runtime command")
		}
		return nil
	default:
		return c.bad("runtime", quote(string(s.Runtime)), "exe, aot, kernel or command")
	}
}

func (c specCheck) artifact(rt Runtime, a *ArtifactRef) error {
	if a == nil || a.Object == "" {
		return c.bad("artifact", "missing", fmt.Sprintf("an uploaded file for runtime %s; push a file", rt))
	}
	if a.Size <= 0 || a.Size > MaxArtifactSize {
		return c.bad("artifact.size", strconv.FormatInt(a.Size, 10), fmt.Sprintf("1 to %d bytes", int64(MaxArtifactSize)))
	}
	if len(a.SHA256) != 64 || strings.Trim(a.SHA256, "0123456789abcdef") != "" {
		return c.bad("artifact.sha256", quote(a.SHA256), "a hex SHA-256 (64 characters from 0-9a-f)")
	}
	if want := ArtifactObjectName(a.SHA256); a.Object != want {
		return c.bad("artifact.object", quote(a.Object), strconv.Quote(want)+" (the object named by the digest)")
	}
	return c.str("artifact.file_name", a.FileName, MaxFileNameLength)
}

func (c specCheck) port(port, instances int) error {
	if port < 0 || port > MaxPort {
		return c.bad("port", strconv.Itoa(port), fmt.Sprintf("0 (no PORT) to %d", MaxPort))
	}
	if last := port + instances - 1; port > 0 && last > MaxPort {
		return c.bad("port", fmt.Sprintf("%d with %d instances (last port %d)", port, instances, last),
			fmt.Sprintf("port + instances - 1 up to %d", MaxPort))
	}
	return nil
}

// commandLine checks the strings that become the workers' argv and
// environment, one by one and together.
func (c specCheck) commandLine(s *AppSpec) error {
	if n := len(s.Command) + len(s.Args); n > MaxArgs {
		return c.bad("args", fmt.Sprintf("%d strings with the command", n), fmt.Sprintf("at most %d", MaxArgs))
	}
	if len(s.Env) > MaxEnvVars {
		return c.bad("env", fmt.Sprintf("%d variables", len(s.Env)), fmt.Sprintf("at most %d", MaxEnvVars))
	}
	total := 0
	for i, a := range s.Command {
		if err := c.str(fmt.Sprintf("command[%d]", i), a, MaxArgLength); err != nil {
			return err
		}
		total += len(a) + 1
	}
	for i, a := range s.Args {
		if err := c.str(fmt.Sprintf("args[%d]", i), a, MaxArgLength); err != nil {
			return err
		}
		total += len(a) + 1
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		field := "env[" + quote(k) + "]"
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return c.bad(field, "a variable name", "a non-empty name without '=' or NUL")
		}
		if err := c.str(field, k+"="+s.Env[k], MaxArgLength); err != nil {
			return err
		}
		total += len(k) + len(s.Env[k]) + 2
	}
	if err := c.str("interpreter", s.Interpreter, MaxInterpreterLength); err != nil {
		return err
	}
	total += len(s.Interpreter) + 1
	if err := c.str("cwd", s.Cwd, MaxInterpreterLength); err != nil {
		return err
	}
	if s.Cwd != "" && !strings.HasPrefix(s.Cwd, "/") {
		return c.bad("cwd", quote(s.Cwd), "an absolute path on the node")
	}
	if s.Bundle != nil {
		if err := ValidateEntry(s.Bundle.Entry); err != nil {
			return c.bad("bundle.entry (--entry)", quote(s.Bundle.Entry), "a file inside the folder, e.g. bin/server")
		}
		if s.Runtime == RuntimeCommand {
			return c.bad("bundle", "a folder with runtime command", "a folder's entry run as exe, aot or kernel")
		}
	}
	if s.Lambda != nil {
		if err := c.str("lambda.handler", s.Lambda.Handler, MaxHandlerLength); err != nil {
			return err
		}
		total += len("_HANDLER=") + len(s.Lambda.Handler) + 1
	}
	if total > MaxArgvEnvBytes {
		return c.bad("command, args and env", fmt.Sprintf("%d bytes together", total),
			fmt.Sprintf("at most %d (Linux refuses much larger ones with E2BIG)", MaxArgvEnvBytes))
	}
	return nil
}

func (c specCheck) restart(r *RestartPolicy) error {
	if err := c.intRange("restart.max_restarts", r.MaxRestarts, 0, MaxRestartsLimit); err != nil {
		return err
	}
	if err := c.durRange("restart.min_uptime", r.MinUptime, 0, MaxMinUptime); err != nil {
		return err
	}
	if err := c.durRange("restart.restart_delay", r.RestartDelay, 0, MaxRestartDelay); err != nil {
		return err
	}
	if err := c.durRange("restart.kill_timeout", r.KillTimeout, 0, MaxKillTimeout); err != nil {
		return err
	}
	if n := len(r.StopExitCodes); n > MaxStopExitCodes {
		return c.bad("restart.stop_exit_codes", fmt.Sprintf("%d codes", n), fmt.Sprintf("at most %d", MaxStopExitCodes))
	}
	for i, code := range r.StopExitCodes {
		if err := c.intRange(fmt.Sprintf("restart.stop_exit_codes[%d]", i), code, 0, MaxExitCode); err != nil {
			return err
		}
	}
	return nil
}

func (c specCheck) lambda(l *LambdaSpec) error {
	if l.Protocol != ProtocolRuntimeAPI && l.Protocol != ProtocolStdio && l.Protocol != ProtocolNATS {
		return c.bad("lambda.protocol", quote(l.Protocol), "runtime-api, stdio or nats")
	}
	if l.KeepWarm != nil {
		if err := c.durRange("lambda.keep_warm", *l.KeepWarm, 0, MaxKeepWarm); err != nil {
			return err
		}
	}
	if err := c.intRange("lambda.max_workers", l.MaxWorkers, 1, MaxLambdaWorkers); err != nil {
		return err
	}
	if err := c.intRange("lambda.queue", l.Queue, 0, MaxQueue); err != nil {
		return err
	}
	if err := c.durRange("lambda.timeout", l.Timeout, MinLambdaTimeout, MaxLambdaTimeout); err != nil {
		return err
	}
	if err := c.intRange("lambda.memory_mb", l.MemoryMB, MinMemoryMB, MaxMemoryMB); err != nil {
		return err
	}
	switch l.HTTPEvent {
	case HTTPEventAPIGateway, HTTPEventALB, HTTPEventRaw:
	default:
		return c.bad("lambda.http_event", quote(l.HTTPEvent), "apigw, alb or raw")
	}
	if err := c.functionRoutes(l.Routes); err != nil {
		return err
	}
	if l.Async != nil {
		if err := c.async(l.Async); err != nil {
			return err
		}
	}
	return c.schedules(l.Schedules)
}

func (c specCheck) async(a *AsyncSpec) error {
	if a.Retries != nil {
		if err := c.intRange("lambda.async.retries", *a.Retries, 0, MaxRetries); err != nil {
			return err
		}
	}
	if n := len(a.RetryBackoff); n > MaxBackoffSteps {
		return c.bad("lambda.async.retry_backoff", fmt.Sprintf("%d waits", n), fmt.Sprintf("at most %d", MaxBackoffSteps))
	}
	for i, d := range a.RetryBackoff {
		if err := c.durRange(fmt.Sprintf("lambda.async.retry_backoff[%d]", i), d, 0, MaxBackoff); err != nil {
			return err
		}
	}
	if a.MaxEventAge != 0 {
		if err := c.durRange("lambda.async.max_event_age", a.MaxEventAge, MinMaxEventAge, MaxMaxEventAge); err != nil {
			return err
		}
	}
	for field, dest := range map[string]string{"lambda.async.on_success": a.OnSuccess, "lambda.async.on_failure": a.OnFailure} {
		if msg := CheckDestination(dest); msg != "" {
			return c.bad(field, quote(dest), msg)
		}
		if c.app != "" && dest == AsyncSubject(c.app) {
			return c.bad(field, quote(dest), "another lambda's subject: its own would run it again for ever")
		}
	}
	return nil
}

func (c specCheck) schedules(ss []Schedule) error {
	if len(ss) > MaxSchedules {
		return c.bad("lambda.schedules", fmt.Sprintf("%d schedules", len(ss)), fmt.Sprintf("at most %d", MaxSchedules))
	}
	for i, s := range ss {
		if msg := s.Check(); msg != "" {
			return c.bad(fmt.Sprintf("lambda.schedules[%d]", i), quote(s.Cron), msg)
		}
	}
	return nil
}

func (c specCheck) functionRoutes(routes []FunctionRoute) error {
	if len(routes) > MaxFunctionRoutes {
		return c.bad("lambda.routes", fmt.Sprintf("%d routes", len(routes)), fmt.Sprintf("at most %d", MaxFunctionRoutes))
	}
	for i, r := range routes {
		field := fmt.Sprintf("lambda.routes[%d]", i)
		if msg := r.check(); msg != "" {
			return c.bad(field, quote(r.String()), "METHOD /path with {param} or a last {proxy+} segment: "+msg)
		}
		for _, o := range routes[:i] {
			if SamePath(o.Path, r.Path) && (o.Method == r.Method || o.Method == "ANY" || r.Method == "ANY") {
				return c.bad(field, quote(r.String()), "each method and path once (it overlaps "+quote(o.String())+")")
			}
		}
	}
	return nil
}

func (c specCheck) constraints(m map[string]string) error {
	if len(m) > MaxConstraints {
		return c.bad("constraints", fmt.Sprintf("%d labels", len(m)), fmt.Sprintf("at most %d", MaxConstraints))
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		field := "constraints[" + quote(k) + "]"
		if k == "" || m[k] == "" {
			return c.bad(field, quote(m[k]), "a non-empty label name and value")
		}
		if err := c.str(field+" name", k, MaxLabelKeyLength); err != nil {
			return err
		}
		if err := c.str(field, m[k], MaxLabelValueLength); err != nil {
			return err
		}
	}
	return nil
}

// DecodeRequest decodes a control API request body into v as the server
// does: exactly one JSON value, no unknown fields. Errors: *Error 400
// "BadRequest" saying what is wrong.
func DecodeRequest(data []byte, v any) error {
	if len(data) == 0 {
		return Errorf(400, "BadRequest", "request body is empty; send a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return Errorf(400, "BadRequest", "request body is not valid JSON for this verb: %v", err)
	}
	if rest := bytes.TrimSpace(data[d.InputOffset():]); len(rest) > 0 {
		return Errorf(400, "BadRequest", "request body has data after the JSON object (%q); send exactly one JSON object", clip(string(rest), 20))
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ParsePushRequest reads the body of a dartup.api.push request as the push
// verb does: at most MaxSpecBytes, one AppSpec object without unknown
// fields, WithDefaults, then Validate. It returns the spec with defaults.
// Errors: *Error 413 TypeTooLarge for a larger body, *Error 400 for anything
// else wrong (see DecodeRequest and Validate).
func ParsePushRequest(data []byte) (AppSpec, error) {
	if len(data) > MaxSpecBytes {
		return AppSpec{}, Errorf(413, TypeTooLarge, "push request is %d bytes; allowed at most %d (MaxSpecBytes): the spec's command line, args and environment are too large", len(data), MaxSpecBytes)
	}
	var spec AppSpec
	if err := DecodeRequest(data, &spec); err != nil {
		return AppSpec{}, err
	}
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return AppSpec{}, err
	}
	return spec, nil
}
