package clientsdk_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// validDaemon and validLambda are specs in range, after WithDefaults.
func validDaemon() clientsdk.AppSpec {
	return clientsdk.AppSpec{Name: "web", Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/true"},
		Args: []string{"--flag"}, Env: map[string]string{"MODE": "run"}, Constraints: map[string]string{"zone": "a"}}.WithDefaults()
}

func validLambda() clientsdk.AppSpec {
	return clientsdk.AppSpec{Name: "fn", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand,
		Command: []string{"bootstrap"}, Lambda: &clientsdk.LambdaSpec{Handler: "main"}}.WithDefaults()
}

func dur(d time.Duration) clientsdk.Duration { return clientsdk.Duration(d) }

// boundCase changes a valid spec; the result must be refused (want non-empty:
// the field, value and allowed range the message names) or accepted (want nil).
type boundCase struct {
	name   string
	lambda bool
	change func(*clientsdk.AppSpec)
	want   []string
}

func boundCases() []boundCase {
	big := strings.Repeat("x", 200<<10)
	many := func(n int) []string { return strings.Split(strings.Repeat("a ", n-1)+"a", " ") }
	return []boundCase{
		// What the adversarial review got accepted.
		{"NUL in env value", false, func(s *clientsdk.AppSpec) { s.Env["MODE"] = "a\x00b" }, []string{`env["MODE"]`, "--env", `a\x00b`, "no NUL byte"}},
		{"NUL in env name", false, func(s *clientsdk.AppSpec) { s.Env["A\x00B"] = "x" }, []string{`env["A\x00B"]`, "without '=' or NUL"}},
		{"NUL in command", false, func(s *clientsdk.AppSpec) { s.Command[0] = "/bin/tr\x00ue" }, []string{"command[0]", "no NUL byte (one is at offset 7)"}},
		{"NUL in arg", false, func(s *clientsdk.AppSpec) { s.Args[0] = "\x00" }, []string{"args[0]", "--arg", `"\x00"`, "no NUL"}},
		{"200 KB arg", false, func(s *clientsdk.AppSpec) { s.Args[0] = big }, []string{"args[0]", "(204800 bytes)", "at most 32768 bytes"}},
		{"200 KB env value", false, func(s *clientsdk.AppSpec) { s.Env["BIG"] = big }, []string{`env["BIG"]`, "at most 32768 bytes"}},
		{"argv and env too large together", false, func(s *clientsdk.AppSpec) {
			for i := range 8 {
				s.Args = append(s.Args, big[:20<<10])
				s.Env["V"+strconv.Itoa(i)] = big[:20<<10]
			}
		}, []string{"command, args and env", "bytes together", "at most 131072"}},
		{"port past 65535", false, func(s *clientsdk.AppSpec) { s.Port = 70000 }, []string{"port (--port)", "70000", "0 (no PORT) to 65535"}},
		{"port overflowing with instances", false, func(s *clientsdk.AppSpec) { s.Port = math.MaxInt - 1; s.Instances = 4 }, []string{"port", strconv.Itoa(math.MaxInt - 1), "to 65535"}},
		{"last port past 65535", false, func(s *clientsdk.AppSpec) { s.Port = 65534; s.Instances = 3 }, []string{"port", "65534 with 3 instances (last port 65536)", "up to 65535"}},
		{"negative port", false, func(s *clientsdk.AppSpec) { s.Port = -1 }, []string{"port", "-1"}},
		{"kill timeout of a million hours", false, func(s *clientsdk.AppSpec) { s.Restart.KillTimeout = dur(1e6 * time.Hour) }, []string{"restart.kill_timeout (--kill-timeout)", "1000000h0m0s", "0s to 10m0s"}},
		{"negative kill timeout", false, func(s *clientsdk.AppSpec) { s.Restart.KillTimeout = dur(-time.Second) }, []string{"restart.kill_timeout", "-1s"}},
		{"min uptime too long", false, func(s *clientsdk.AppSpec) { s.Restart.MinUptime = dur(11 * time.Minute) }, []string{"restart.min_uptime (--min-uptime)", "11m0s", "0s to 10m0s"}},
		{"restart delay too long", false, func(s *clientsdk.AppSpec) { s.Restart.RestartDelay = dur(math.MaxInt64) }, []string{"restart.restart_delay (--restart-delay)", "2562047h47m16.854775807s", "0s to 10m0s"}},
		{"max restarts too many", false, func(s *clientsdk.AppSpec) { s.Restart.MaxRestarts = math.MaxInt }, []string{"restart.max_restarts (--max-restarts)", strconv.Itoa(math.MaxInt), "0 to 10000"}},
		{"negative max restarts", false, func(s *clientsdk.AppSpec) { s.Restart.MaxRestarts = -1 }, []string{"restart.max_restarts", "-1"}},
		{"stop exit code 256", false, func(s *clientsdk.AppSpec) { s.Restart.StopExitCodes = []int{0, 256} }, []string{"restart.stop_exit_codes[1] (--stop-exit-code)", "256", "0 to 255"}},
		{"stop exit code negative", false, func(s *clientsdk.AppSpec) { s.Restart.StopExitCodes = []int{-1} }, []string{"restart.stop_exit_codes[0]", "-1"}},
		{"too many stop exit codes", false, func(s *clientsdk.AppSpec) { s.Restart.StopExitCodes = make([]int, 257) }, []string{"restart.stop_exit_codes", "257 codes", "at most 256"}},
		{"too many instances", false, func(s *clientsdk.AppSpec) { s.Instances = 1025 }, []string{"instances (--instances)", "1025", "1 to 1024"}},
		{"negative instances", false, func(s *clientsdk.AppSpec) { s.Instances = -3 }, []string{"instances", "-3", "1 to 1024"}},
		{"too many args", false, func(s *clientsdk.AppSpec) { s.Args = many(1024) }, []string{"args (--arg)", "1025 strings", "at most 1024"}},
		{"too many env vars", false, func(s *clientsdk.AppSpec) {
			for i := range 1024 {
				s.Env["V"+strconv.Itoa(i)] = "x"
			}
		}, []string{"env (--env)", "1025 variables", "at most 1024"}},
		{"env name with =", false, func(s *clientsdk.AppSpec) { s.Env["A=B"] = "x" }, []string{`env["A=B"]`, "without '='"}},
		{"interpreter too long", false, func(s *clientsdk.AppSpec) { s.Interpreter = "/" + strings.Repeat("d", 4096) }, []string{"interpreter (--dart-aot-runtime)", "(4097 bytes)", "at most 4096"}},
		{"NUL in interpreter", false, func(s *clientsdk.AppSpec) { s.Interpreter = "/usr/bin/dart\x00" }, []string{"interpreter", "no NUL"}},
		{"too many constraints", false, func(s *clientsdk.AppSpec) {
			for i := range 32 {
				s.Constraints["k"+strconv.Itoa(i)] = "v"
			}
		}, []string{"constraints (--constraint)", "33 labels", "at most 32"}},
		{"constraint key too long", false, func(s *clientsdk.AppSpec) { s.Constraints[strings.Repeat("k", 65)] = "v" }, []string{"constraints[", "name", "(65 bytes)", "at most 64"}},
		{"constraint value too long", false, func(s *clientsdk.AppSpec) { s.Constraints["zone"] = strings.Repeat("v", 129) }, []string{`constraints["zone"]`, "(129 bytes)", "at most 128"}},
		{"constraint value with NUL", false, func(s *clientsdk.AppSpec) { s.Constraints["zone"] = "a\x00" }, []string{`constraints["zone"]`, "no NUL"}},
		{"empty constraint value", false, func(s *clientsdk.AppSpec) { s.Constraints["zone"] = "" }, []string{`constraints["zone"]`, "non-empty"}},
		{"lambda settings on a daemon", false, func(s *clientsdk.AppSpec) { s.Lambda = &clientsdk.LambdaSpec{} }, []string{"lambda", "no lambda settings"}},
		{"artifact file name too long", false, func(s *clientsdk.AppSpec) {
			d := strings.Repeat("ab", 32)
			s.Runtime, s.Command = clientsdk.RuntimeExe, nil
			s.Artifact = &clientsdk.ArtifactRef{Object: clientsdk.ArtifactObjectName(d), SHA256: d, Size: 10, FileName: strings.Repeat("f", 256)}
		}, []string{"artifact.file_name", "at most 255"}},
		{"artifact too large", false, func(s *clientsdk.AppSpec) {
			d := strings.Repeat("ab", 32)
			s.Runtime, s.Command = clientsdk.RuntimeExe, nil
			s.Artifact = &clientsdk.ArtifactRef{Object: clientsdk.ArtifactObjectName(d), SHA256: d, Size: math.MaxInt64}
		}, []string{"artifact.size", strconv.FormatInt(math.MaxInt64, 10), "1 to 2147483648"}},
		{"lambda timeout near MaxInt64", true, func(s *clientsdk.AppSpec) { s.Lambda.Timeout = dur(math.MaxInt64 - 1) }, []string{"lambda.timeout (--timeout)", "2562047h47m16.854775806s", "1ms to 15m0s"}},
		{"lambda timeout too short", true, func(s *clientsdk.AppSpec) { s.Lambda.Timeout = dur(time.Microsecond) }, []string{"lambda.timeout", "1µs", "1ms to 15m0s"}},
		{"keep warm too long", true, func(s *clientsdk.AppSpec) { kw := dur(25 * time.Hour); s.Lambda.KeepWarm = &kw }, []string{"lambda.keep_warm (--keep-warm)", "25h0m0s", "0s to 24h0m0s"}},
		{"negative keep warm", true, func(s *clientsdk.AppSpec) { kw := dur(-1); s.Lambda.KeepWarm = &kw }, []string{"lambda.keep_warm", "-1ns"}},
		{"memory -1", true, func(s *clientsdk.AppSpec) { s.Lambda.MemoryMB = -1 }, []string{"lambda.memory_mb (--memory)", "-1", "1 to 10240"}},
		{"memory too large", true, func(s *clientsdk.AppSpec) { s.Lambda.MemoryMB = 10241 }, []string{"lambda.memory_mb", "10241", "1 to 10240"}},
		{"queue MaxInt64", true, func(s *clientsdk.AppSpec) { s.Lambda.Queue = math.MaxInt64 }, []string{"lambda.queue (--queue)", strconv.Itoa(math.MaxInt64), "0 to 100000"}},
		{"negative queue", true, func(s *clientsdk.AppSpec) { s.Lambda.Queue = -1 }, []string{"lambda.queue", "-1"}},
		{"too many workers", true, func(s *clientsdk.AppSpec) { s.Lambda.MaxWorkers = 1025 }, []string{"lambda.max_workers (--max-workers)", "1025", "1 to 1024"}},
		{"handler too long", true, func(s *clientsdk.AppSpec) { s.Lambda.Handler = strings.Repeat("h", 257) }, []string{"lambda.handler (--handler)", "at most 256"}},
		{"NUL in handler", true, func(s *clientsdk.AppSpec) { s.Lambda.Handler = "main\x00" }, []string{"lambda.handler", "no NUL"}},
		{"unknown protocol", true, func(s *clientsdk.AppSpec) { s.Lambda.Protocol = "grpc" }, []string{"lambda.protocol (--protocol)", `"grpc"`, "runtime-api, stdio or nats"}},
		{"unknown http event", true, func(s *clientsdk.AppSpec) { s.Lambda.HTTPEvent = "v2" }, []string{"lambda.http_event (--http-event)", `"v2"`, "apigw, alb or raw"}},
		{"relative cwd", true, func(s *clientsdk.AppSpec) { s.Cwd = "srv/app" }, []string{"cwd", `"srv/app"`, "an absolute path"}},

		// At the bounds: accepted.
		{"every bound at its maximum", false, func(s *clientsdk.AppSpec) {
			s.Instances, s.Port = clientsdk.MaxInstances, clientsdk.MaxPort-clientsdk.MaxInstances+1
			s.Restart = clientsdk.RestartPolicy{MaxRestarts: clientsdk.MaxRestartsLimit, MinUptime: dur(clientsdk.MaxMinUptime),
				RestartDelay: dur(clientsdk.MaxRestartDelay), KillTimeout: dur(clientsdk.MaxKillTimeout), StopExitCodes: []int{0, 255}}
			s.Args = []string{big[:clientsdk.MaxArgLength]}
			s.Interpreter = big[:clientsdk.MaxInterpreterLength]
		}, nil},
		{"port 65535 with one instance", false, func(s *clientsdk.AppSpec) { s.Port = 65535 }, nil},
		{"lambda at its maxima", true, func(s *clientsdk.AppSpec) {
			kw := dur(clientsdk.MaxKeepWarm)
			*s.Lambda = clientsdk.LambdaSpec{Protocol: clientsdk.ProtocolStdio, Handler: big[:clientsdk.MaxHandlerLength], KeepWarm: &kw,
				MaxWorkers: clientsdk.MaxLambdaWorkers, Queue: clientsdk.MaxQueue, Timeout: dur(clientsdk.MaxLambdaTimeout),
				MemoryMB: clientsdk.MaxMemoryMB, HTTPEvent: clientsdk.HTTPEventRaw}
		}, nil},
		{"lambda at its minima", true, func(s *clientsdk.AppSpec) {
			kw := dur(0)
			s.Lambda.KeepWarm, s.Lambda.Timeout, s.Lambda.MemoryMB, s.Lambda.MaxWorkers = &kw, dur(clientsdk.MinLambdaTimeout), clientsdk.MinMemoryMB, 1
		}, nil},
	}
}

// TestSpecBounds: every bound, refused past it with an *Error 400 naming the
// field, the value and the allowed range; accepted at it.
func TestSpecBounds(t *testing.T) {
	for _, tc := range boundCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := validDaemon()
			if tc.lambda {
				s = validLambda()
			}
			tc.change(&s)
			err := s.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v; want nil", err)
				}
				if c := s.Clamp(); !reflect.DeepEqual(c, s) {
					t.Fatalf("Clamp changed a valid spec:\n%+v\n%+v", s, c)
				}
				return
			}
			var e *clientsdk.Error
			if !errors.As(err, &e) || e.Code != 400 || e.Type != clientsdk.TypeInvalidSpec || !errors.Is(err, clientsdk.ErrBadRequest) {
				t.Fatalf("Validate = %v; want *clientsdk.Error 400 %s", err, clientsdk.TypeInvalidSpec)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q does not name %q", e.Message, w)
				}
			}
			if len(e.Message) > 400 {
				t.Errorf("message is %d bytes long; a bad value must not be echoed whole", len(e.Message))
			}
			// ValidateBounds (the CLI's and Client.Push's early check) agrees,
			// but for the artifact, which is uploaded after it.
			if err2 := s.ValidateBounds(); !strings.HasPrefix(tc.want[0], "artifact") && (err2 == nil || err2.Error() != err.Error()) {
				t.Errorf("ValidateBounds = %v; want %v", err2, err)
			}
		})
	}
}

// TestClampBringsNumbersIntoRange: a spec stored before the bounds existed
// is run clamped; only what clamping cannot repair still fails Validate.
func TestClampBringsNumbersIntoRange(t *testing.T) {
	for _, tc := range boundCases() {
		if tc.want == nil {
			continue
		}
		s := validDaemon()
		if tc.lambda {
			s = validLambda()
		}
		tc.change(&s)
		c := s.Clamp()
		if cc := c.Clamp(); !reflect.DeepEqual(cc, c) {
			t.Errorf("%s: Clamp is not idempotent", tc.name)
		}
		if tc.lambda && s.Lambda == c.Lambda {
			t.Errorf("%s: Clamp shares the LambdaSpec with the original", tc.name)
		}
		numeric := tc.want[0] == "instances" || strings.HasPrefix(tc.want[0], "restart.") && !strings.Contains(tc.want[0], "stop_exit") ||
			strings.HasPrefix(tc.want[0], "lambda.") && !strings.Contains(tc.want[0], "handler") && !strings.Contains(tc.want[0], "protocol") && !strings.Contains(tc.want[0], "http_event")
		if err := c.Validate(); numeric && err != nil {
			t.Errorf("%s: clamped spec still fails: %v", tc.name, err)
		}
	}
	// The values the review stored.
	kw := dur(math.MaxInt64)
	s := validLambda()
	s.Lambda.Timeout, s.Lambda.Queue, s.Lambda.MaxWorkers, s.Lambda.MemoryMB, s.Lambda.KeepWarm = dur(math.MaxInt64), math.MaxInt64, math.MaxInt64, -1, &kw
	s.Restart.KillTimeout, s.Instances = dur(1e6*time.Hour), math.MaxInt
	c := s.Clamp()
	l := c.Lambda
	if l.Timeout.D() != clientsdk.MaxLambdaTimeout || l.Queue != clientsdk.MaxQueue || l.MaxWorkers != clientsdk.MaxLambdaWorkers ||
		l.MemoryMB != clientsdk.MinMemoryMB || l.KeepWarm.D() != clientsdk.MaxKeepWarm || c.Restart.KillTimeout.D() != clientsdk.MaxKillTimeout ||
		c.Instances != clientsdk.MaxInstances {
		t.Fatalf("Clamp = %+v %+v", c, *l)
	}
	if s.Lambda.Queue != math.MaxInt64 || s.Lambda.KeepWarm.D() != math.MaxInt64 {
		t.Fatal("Clamp changed the original spec")
	}
}

// TestMaxSpecFitsMaxSpecBytes: a spec at every string bound, with every byte
// escaped to six in JSON, still encodes within MaxSpecBytes, so the push
// verb's size limit never refuses a spec that is otherwise valid.
func TestMaxSpecFitsMaxSpecBytes(t *testing.T) {
	s := validLambda()
	esc := func(n int) string { return strings.Repeat("\x01", n) } // encodes as \u0001
	s.Env, s.Args, s.Command = map[string]string{}, nil, nil
	total := 0
	for i := 0; total < clientsdk.MaxArgvEnvBytes-2*clientsdk.MaxArgLength; i++ {
		s.Args = append(s.Args, esc(clientsdk.MaxArgLength-1))
		total += clientsdk.MaxArgLength
	}
	s.Command = []string{esc(clientsdk.MaxArgLength/2 - 1)}
	s.Interpreter = esc(clientsdk.MaxInterpreterLength)
	s.Lambda.Handler = esc(clientsdk.MaxHandlerLength)
	for i := 0; i < clientsdk.MaxEnvVars && s.ValidateBounds() == nil; i++ {
		s.Env["E"+strconv.Itoa(i)] = esc(8)
	}
	delete(s.Env, "E"+strconv.Itoa(len(s.Env)-1))
	s.Constraints = map[string]string{}
	for i := 0; i < clientsdk.MaxConstraints; i++ {
		k := strconv.Itoa(i) + esc(clientsdk.MaxLabelKeyLength-3)
		s.Constraints[k] = esc(clientsdk.MaxLabelValueLength)
	}
	s.Restart.StopExitCodes = make([]int, clientsdk.MaxStopExitCodes)
	for i := range s.Restart.StopExitCodes {
		s.Restart.StopExitCodes[i] = i
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > clientsdk.MaxSpecBytes {
		t.Fatalf("a valid spec encodes to %d bytes, over MaxSpecBytes %d", len(b), clientsdk.MaxSpecBytes)
	}
	if _, err := clientsdk.ParsePushRequest(b); err != nil {
		t.Fatalf("ParsePushRequest of a valid %d-byte spec: %v", len(b), err)
	}
	t.Logf("largest valid spec: %d bytes of JSON", len(b))
}
