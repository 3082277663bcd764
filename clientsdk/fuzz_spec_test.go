package clientsdk_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// FuzzPushRequest decodes arbitrary bytes as the push verb does
// (clientsdk.ParsePushRequest: size, strict JSON, WithDefaults, Validate). It
// must never panic; a refusal is an *Error 400 or 413; a spec it accepts
// satisfies every bound (re-stated here independently of Validate), is left
// alone by Clamp, encodes within MaxSpecBytes and parses back to itself. Any
// decodable spec, valid or not, clamps into range. Seeds:
// testdata/fuzz/FuzzPushRequest.
func FuzzPushRequest(f *testing.F) {
	f.Add([]byte(`{"name":"web","runtime":"command","command":["/bin/true"],"port":8080,"instances":4}`))
	f.Add([]byte(`{"name":"fn","kind":"lambda","runtime":"command","command":["bootstrap"],"lambda":{"timeout":"15m","queue":100000}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := clientsdk.ParsePushRequest(data)
		if err != nil {
			e, ok := clientsdk.AsError(err)
			if !ok || e.Message == "" || (e.Code != 400 && e.Code != 413) || (e.Code == 413) != (len(data) > clientsdk.MaxSpecBytes) {
				t.Fatalf("ParsePushRequest = %#v; want *Error 400, or 413 only over MaxSpecBytes", err)
			}
			var raw clientsdk.AppSpec
			if len(data) <= clientsdk.MaxSpecBytes && json.Unmarshal(data, &raw) == nil {
				c := raw.WithDefaults().Clamp()
				checkNumbers(t, c)
				if cc := c.Clamp(); !reflect.DeepEqual(cc, c) {
					t.Fatalf("Clamp is not idempotent: %+v then %+v", c, cc)
				}
			}
			return
		}
		checkBounds(t, spec)
		if c := spec.Clamp(); !reflect.DeepEqual(c, spec) {
			t.Fatalf("Clamp changed a valid spec: %+v to %+v", spec, c)
		}
		b, err := json.Marshal(spec)
		if err != nil || len(b) > clientsdk.MaxSpecBytes {
			t.Fatalf("a valid spec encodes to %d bytes (%v), over MaxSpecBytes", len(b), err)
		}
		again, err := clientsdk.ParsePushRequest(b)
		if err != nil {
			t.Fatalf("the stored form of a valid spec is refused: %v\n%s", err, b)
		}
		if b2, _ := json.Marshal(again); string(b2) != string(b) {
			t.Fatalf("round trip changed the spec:\n%s\n%s", b, b2)
		}
	})
}

// checkNumbers fails unless every count and duration of s is in range.
func checkNumbers(t *testing.T, s clientsdk.AppSpec) {
	t.Helper()
	in := func(what string, v, lo, hi int64) {
		if v < lo || v > hi {
			t.Fatalf("%s = %d, outside %d..%d", what, v, lo, hi)
		}
	}
	d := func(v clientsdk.Duration) int64 { return int64(v) }
	in("instances", int64(s.Instances), 1, clientsdk.MaxInstances)
	r := s.Restart
	in("max_restarts", int64(r.MaxRestarts), 0, clientsdk.MaxRestartsLimit)
	in("min_uptime", d(r.MinUptime), 0, int64(clientsdk.MaxMinUptime))
	in("restart_delay", d(r.RestartDelay), 0, int64(clientsdk.MaxRestartDelay))
	in("kill_timeout", d(r.KillTimeout), 0, int64(clientsdk.MaxKillTimeout))
	if l := s.Lambda; l != nil {
		in("max_workers", int64(l.MaxWorkers), 1, clientsdk.MaxLambdaWorkers)
		in("queue", int64(l.Queue), 0, clientsdk.MaxQueue)
		in("timeout", d(l.Timeout), int64(clientsdk.MinLambdaTimeout), int64(clientsdk.MaxLambdaTimeout))
		in("memory_mb", int64(l.MemoryMB), clientsdk.MinMemoryMB, clientsdk.MaxMemoryMB)
		if l.KeepWarm != nil {
			in("keep_warm", d(*l.KeepWarm), 0, int64(clientsdk.MaxKeepWarm))
		}
	}
	// What the runner, lambdas and gateway compute with them cannot overflow.
	if l := s.Lambda; l != nil && (l.Queue+l.MaxWorkers < 0 || 2*l.Timeout.D()+10*time.Second < 0) {
		t.Fatalf("lambda numbers overflow: %+v", *l)
	}
}

// checkBounds fails unless s satisfies every bound of limits.go.
func checkBounds(t *testing.T, s clientsdk.AppSpec) {
	t.Helper()
	checkNumbers(t, s)
	if clientsdk.ValidateName(s.Name) != nil {
		t.Fatalf("accepted name %q", s.Name)
	}
	if s.Port < 0 || s.Port > clientsdk.MaxPort || (s.Port > 0 && s.Port+s.Instances-1 > clientsdk.MaxPort) {
		t.Fatalf("accepted port %d with %d instances", s.Port, s.Instances)
	}
	str := func(what, v string, max int) int {
		if len(v) > max || strings.ContainsRune(v, 0) {
			t.Fatalf("accepted %s %q (%d bytes, max %d, or a NUL)", what, v, len(v), max)
		}
		return len(v) + 1
	}
	if len(s.Command)+len(s.Args) > clientsdk.MaxArgs || len(s.Env) > clientsdk.MaxEnvVars || len(s.Constraints) > clientsdk.MaxConstraints {
		t.Fatalf("accepted %d args, %d env vars, %d constraints", len(s.Command)+len(s.Args), len(s.Env), len(s.Constraints))
	}
	total := 0
	for _, a := range append(append([]string{}, s.Command...), s.Args...) {
		total += str("arg", a, clientsdk.MaxArgLength)
	}
	for k, v := range s.Env {
		if k == "" || strings.Contains(k, "=") {
			t.Fatalf("accepted env name %q", k)
		}
		total += str("env entry", k+"="+v, clientsdk.MaxArgLength)
	}
	total += str("interpreter", s.Interpreter, clientsdk.MaxInterpreterLength)
	if s.Lambda != nil {
		total += str("handler", s.Lambda.Handler, clientsdk.MaxHandlerLength)
	}
	if total > clientsdk.MaxArgvEnvBytes {
		t.Fatalf("accepted %d bytes of argv and env", total)
	}
	for k, v := range s.Constraints {
		if k == "" || v == "" {
			t.Fatalf("accepted constraint %q=%q", k, v)
		}
		str("label", k, clientsdk.MaxLabelKeyLength)
		str("label value", v, clientsdk.MaxLabelValueLength)
	}
	if len(s.Restart.StopExitCodes) > clientsdk.MaxStopExitCodes {
		t.Fatalf("accepted %d stop exit codes", len(s.Restart.StopExitCodes))
	}
	for _, c := range s.Restart.StopExitCodes {
		if c < 0 || c > clientsdk.MaxExitCode {
			t.Fatalf("accepted stop exit code %d", c)
		}
	}
	switch {
	case s.Kind == clientsdk.KindLambda && (s.Lambda == nil || s.Lambda.KeepWarm == nil):
		t.Fatalf("accepted a lambda without (defaulted) settings: %+v", s.Lambda)
	case s.Kind == clientsdk.KindDaemon && s.Lambda != nil:
		t.Fatalf("accepted lambda settings on a daemon")
	case s.Kind != clientsdk.KindDaemon && s.Kind != clientsdk.KindLambda:
		t.Fatalf("accepted kind %q", s.Kind)
	}
	switch s.Runtime {
	case clientsdk.RuntimeExe, clientsdk.RuntimeAOT, clientsdk.RuntimeKernel, clientsdk.RuntimeCommand:
	default:
		t.Fatalf("accepted runtime %q", s.Runtime)
	}
	if s.Runtime == clientsdk.RuntimeCommand {
		if s.Artifact != nil || len(s.Command) == 0 || s.Command[0] == "" {
			t.Fatalf("accepted runtime command with artifact %+v, command %q", s.Artifact, s.Command)
		}
		return
	}
	a := s.Artifact
	if a == nil || a.Size < 1 || a.Size > clientsdk.MaxArtifactSize || len(a.SHA256) != 64 || a.Object != clientsdk.ArtifactObjectName(a.SHA256) {
		t.Fatalf("accepted runtime %q with artifact %+v", s.Runtime, a)
	}
	str("file name", a.FileName, clientsdk.MaxFileNameLength)
}
