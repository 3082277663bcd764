package clientsdk

import "time"

// Bounds of an AppSpec. AppSpec.Validate (run by Client.Push before it
// uploads, by `dartup push` before it connects, and by the push verb on the
// server) refuses a spec outside them with an *Error 400 "InvalidSpec" that
// names the field, its value and the allowed range; the push verb refuses a
// request body over MaxSpecBytes with 413 "TooLarge". Runners and the HTTP
// gateway bring the numbers of a spec stored before these bounds existed into
// range with AppSpec.Clamp, so that nothing they compute overflows or waits
// for ever.
const (
	// MaxSpecBytes bounds the JSON body of a push request (1 MiB). Every
	// spec within the other bounds encodes to less, even with every string
	// escaped as \u00XX.
	MaxSpecBytes = 1 << 20

	// MaxInstances bounds a daemon's instances (at least 1).
	MaxInstances = 1024
	// MaxPort is the highest port an instance may get: PORT = port + index,
	// so port + instances - 1 must not pass it. Port 0 means no PORT.
	MaxPort = 65535

	// MaxArgs bounds the strings of the command line: command and args together.
	MaxArgs = 1024
	// MaxEnvVars bounds the app's environment variables.
	MaxEnvVars = 1024
	// MaxArgLength bounds one command-line string (command or argument) and
	// one environment entry "NAME=value", in bytes: well under Linux's
	// MAX_ARG_STRLEN (128 KiB per string), above which exec fails with E2BIG.
	MaxArgLength = 32 << 10
	// MaxArgvEnvBytes bounds the command line, args, environment entries,
	// interpreter and handler of a spec together (each string plus its
	// terminating NUL): well under Linux's ARG_MAX (2 MiB with the usual 8 MiB
	// stack), leaving room for the runner's own environment.
	MaxArgvEnvBytes = 128 << 10
	// MaxInterpreterLength bounds the interpreter path (Linux's PATH_MAX).
	MaxInterpreterLength = 4096
	// MaxHandlerLength bounds a lambda's handler (passed as _HANDLER).
	MaxHandlerLength = 256
	// MaxFileNameLength bounds the artifact's informational file name.
	MaxFileNameLength = 255

	// MaxHistory bounds the versions an app keeps (history).
	MaxHistory = 100

	// MaxConstraints bounds the placement constraints of a spec.
	MaxConstraints = 32
	// MaxLabelKeyLength bounds a constraint's label name.
	MaxLabelKeyLength = 64
	// MaxLabelValueLength bounds a constraint's label value.
	MaxLabelValueLength = 128

	// MaxRestartsLimit is the largest restart.max_restarts (at least 1 after
	// defaults).
	MaxRestartsLimit = 10000
	// MaxMinUptime bounds restart.min_uptime.
	MaxMinUptime = 10 * time.Minute
	// MaxRestartDelay bounds restart.restart_delay, the first backoff delay.
	MaxRestartDelay = 10 * time.Minute
	// MaxKillTimeout bounds restart.kill_timeout, the grace between SIGTERM
	// and SIGKILL: `dartup kill` and a server's shutdown never wait longer
	// for one worker.
	MaxKillTimeout = 10 * time.Minute
	// MaxStopExitCodes bounds restart.stop_exit_codes; each code is 0 to MaxExitCode.
	MaxStopExitCodes = 256
	// MaxExitCode is the highest exit code a process can have.
	MaxExitCode = 255

	// MinLambdaTimeout and MaxLambdaTimeout bound lambda.timeout (AWS
	// Lambda's maximum is 15 minutes too).
	MinLambdaTimeout = time.Millisecond
	MaxLambdaTimeout = 15 * time.Minute
	// MaxKeepWarm bounds lambda.keep_warm.
	MaxKeepWarm = 24 * time.Hour
	// MaxLambdaWorkers bounds lambda.max_workers (at least 1).
	MaxLambdaWorkers = 1024
	// MaxQueue bounds lambda.queue (0 after defaults only from a stored spec).
	MaxQueue = 100000
	// MinMemoryMB and MaxMemoryMB bound lambda.memory_mb (AWS Lambda allows
	// 128 to 10240; dartup only advertises the value, so smaller ones pass).
	MinMemoryMB = 1
	MaxMemoryMB = 10240
)

// Error types of the control API's push verb (Error.Type).
const (
	// TypeInvalidSpec: the spec is outside its bounds or inconsistent (400).
	TypeInvalidSpec = "InvalidSpec"
	// TypeTooLarge: a request body or file is over its size limit (413).
	TypeTooLarge = "TooLarge"
	// TypeArtifactMissing: the spec's artifact is not in the object store (400).
	TypeArtifactMissing = "ArtifactMissing"
	// TypeArtifactMismatch: the stored artifact's size or header digest is
	// not what the spec says (400).
	TypeArtifactMismatch = "ArtifactMismatch"
	// TypeArtifactCorrupt: the stored artifact's bytes do not have the
	// digest its name says (400); Client.Push uploads it again.
	TypeArtifactCorrupt = "ArtifactCorrupt"
)

// Clamp returns a copy of s (after WithDefaults) with every count and duration
// moved into its allowed range. It is for specs stored by a dartup older than
// these bounds: runners and the gateway run such a spec clamped instead of
// overflowing or waiting for ever. Strings, ports and enumerations are left
// as they are; Validate still refuses what clamping cannot repair. A spec
// that passes Validate is returned unchanged.
func (s AppSpec) Clamp() AppSpec {
	s.Instances = clampInt(s.Instances, 1, MaxInstances)
	r := &s.Restart
	r.MaxRestarts = clampInt(r.MaxRestarts, 0, MaxRestartsLimit)
	r.MinUptime = clampDur(r.MinUptime, 0, MaxMinUptime)
	r.RestartDelay = clampDur(r.RestartDelay, 0, MaxRestartDelay)
	r.KillTimeout = clampDur(r.KillTimeout, 0, MaxKillTimeout)
	if s.Kind == KindDaemon {
		s.ReadyTimeout = clampDur(s.ReadyTimeout, MinProbeInterval, MaxProbeInterval)
		s.HealthInterval = clampDur(s.HealthInterval, MinProbeInterval, MaxProbeInterval)
		s.HealthFailures = clampInt(s.HealthFailures, 1, MaxHealthFailures)
		s.Parallel = clampInt(s.Parallel, 1, MaxInstances)
	}
	if s.Lambda != nil {
		l := *s.Lambda
		l.MaxWorkers = clampInt(l.MaxWorkers, 1, MaxLambdaWorkers)
		l.Queue = clampInt(l.Queue, 0, MaxQueue)
		l.Timeout = clampDur(l.Timeout, MinLambdaTimeout, MaxLambdaTimeout)
		l.MemoryMB = clampInt(l.MemoryMB, MinMemoryMB, MaxMemoryMB)
		if l.KeepWarm != nil {
			kw := clampDur(*l.KeepWarm, 0, MaxKeepWarm)
			l.KeepWarm = &kw
		}
		s.Lambda = &l
	}
	return s
}

func clampInt(v, lo, hi int) int { return min(max(v, lo), hi) }

func clampDur(v Duration, lo, hi time.Duration) Duration {
	return Duration(min(max(v.D(), lo), hi))
}
