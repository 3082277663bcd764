package clientsdk

import (
	"fmt"
	"strings"
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

// Validate checks a spec after WithDefaults: the name, kind, runtime, artifact,
// counts and durations. It returns an *Error with code 400 naming the first
// problem found.
func (s *AppSpec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return Errorf(400, "InvalidSpec", "app %s: %s", s.Name, fmt.Sprintf(format, args...))
	}
	switch s.Kind {
	case KindDaemon, KindLambda:
	default:
		return bad("kind %q is not daemon or lambda", s.Kind)
	}
	switch s.Runtime {
	case RuntimeExe, RuntimeAOT, RuntimeKernel:
		if s.Artifact == nil || s.Artifact.Object == "" {
			return bad("runtime %s needs an artifact; push a file", s.Runtime)
		}
		if s.Artifact.Size <= 0 {
			return bad("the artifact is empty (0 bytes)")
		}
		if len(s.Artifact.SHA256) != 64 || strings.Trim(s.Artifact.SHA256, "0123456789abcdef") != "" {
			return bad("artifact digest %q is not a hex SHA-256", s.Artifact.SHA256)
		}
	case RuntimeCommand:
		if len(s.Command) == 0 || s.Command[0] == "" {
			return bad("runtime command needs a command line (dartup push --name NAME -- ./bin/app --flag)")
		}
	default:
		return bad("runtime %q is not one of exe, aot, kernel, command", s.Runtime)
	}
	if s.Instances < 1 || s.Instances > 1024 {
		return bad("instances must be between 1 and 1024, not %d", s.Instances)
	}
	if s.Port < 0 || s.Port+s.Instances > 65536 {
		return bad("port %d with %d instances is outside 1-65535", s.Port, s.Instances)
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return bad("environment variable name %q is invalid", k)
		}
	}
	r := s.Restart
	if r.MaxRestarts < 0 || r.MinUptime < 0 || r.RestartDelay < 0 || r.KillTimeout < 0 {
		return bad("restart settings must not be negative")
	}
	if s.Kind == KindLambda {
		l := s.Lambda
		if l == nil {
			return bad("lambda settings missing")
		}
		if l.Protocol != ProtocolRuntimeAPI && l.Protocol != ProtocolStdio {
			return bad("protocol %q is not runtime-api or stdio", l.Protocol)
		}
		if l.MaxWorkers < 1 || l.MaxWorkers > 1024 {
			return bad("max-workers must be between 1 and 1024, not %d", l.MaxWorkers)
		}
		if l.Queue < 0 {
			return bad("queue must not be negative")
		}
		if l.Timeout <= 0 || (l.KeepWarm != nil && *l.KeepWarm < 0) {
			return bad("timeout must be positive and keep-warm not negative")
		}
		switch l.HTTPEvent {
		case HTTPEventAPIGateway, HTTPEventALB, HTTPEventRaw:
		default:
			return bad("http-event %q is not apigw, alb or raw", l.HTTPEvent)
		}
	}
	for k, v := range s.Constraints {
		if k == "" || v == "" {
			return bad("constraint %q=%q must have a label and a value", k, v)
		}
	}
	return nil
}
