package broker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// TestPushBounds sends the push requests an adversarial review got accepted
// by the real server: each is now refused with a 4xx naming the field, the
// value and the allowed range, and nothing is stored.
func TestPushBounds(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL())
	const daemon = `{"name":"bad","runtime":"command","command":["/bin/true"]`
	const lambda = `{"name":"bad","kind":"lambda","runtime":"command","command":["bootstrap"]`
	cases := []struct {
		name string
		body string
		code int
		want []string
	}{
		{"NUL in an env value", daemon + `,"env":{"A":"a\u0000b"}}`, 400, []string{`env["A"]`, `"A=a\x00b"`, "no NUL"}},
		{"NUL in the command", `{"name":"bad","runtime":"command","command":["/bin/tr\u0000ue"]}`, 400, []string{"command[0]", "no NUL"}},
		{"NUL in an arg", daemon + `,"args":["--x","\u0000"]}`, 400, []string{"args[1]", "no NUL"}},
		{"a 7 MiB spec", daemon + `,"args":["` + strings.Repeat("a", 7<<20) + `"]}`, 413, []string{"7340", "at most 1048576"}},
		{"a 200 KB arg", daemon + `,"args":["` + strings.Repeat("a", 200<<10) + `"]}`, 400, []string{"args[0]", "204800 bytes", "at most 32768 bytes"}},
		{"port past 65535", daemon + `,"port":70000}`, 400, []string{"port", "70000", "65535"}},
		{"port overflowing with instances", daemon + `,"port":9223372036854775807,"instances":2}`, 400, []string{"port", "9223372036854775807", "65535"}},
		{"kill timeout of a million hours", daemon + `,"restart":{"kill_timeout":"1000000h"}}`, 400, []string{"restart.kill_timeout", "1000000h0m0s", "0s to 10m0s"}},
		{"restart delay of a year", daemon + `,"restart":{"restart_delay":"8760h"}}`, 400, []string{"restart.restart_delay", "8760h0m0s", "10m0s"}},
		{"min uptime in nanoseconds, huge", daemon + `,"restart":{"min_uptime":9223372036854775807}}`, 400, []string{"restart.min_uptime", "10m0s"}},
		{"stop exit code 1000", daemon + `,"restart":{"stop_exit_codes":[1000]}}`, 400, []string{"restart.stop_exit_codes[0]", "1000", "0 to 255"}},
		{"lambda timeout near MaxInt64", lambda + `,"lambda":{"timeout":9223372036854775806}}`, 400, []string{"lambda.timeout", "1ms to 15m0s"}},
		{"keep warm of a year", lambda + `,"lambda":{"keep_warm":"8760h"}}`, 400, []string{"lambda.keep_warm", "0s to 24h0m0s"}},
		{"memory -1", lambda + `,"lambda":{"memory_mb":-1}}`, 400, []string{"lambda.memory_mb", "-1", "1 to 10240"}},
		{"queue MaxInt64", lambda + `,"lambda":{"queue":9223372036854775807}}`, 400, []string{"lambda.queue", "9223372036854775807", "0 to 100000"}},
		{"NUL in the handler", lambda + `,"lambda":{"handler":"a\u0000"}}`, 400, []string{"lambda.handler", "no NUL"}},
		{"a long constraint", daemon + `,"constraints":{"zone":"` + strings.Repeat("z", 200) + `"}}`, 400, []string{`constraints["zone"]`, "at most 128"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := rawRequest(t, nc, clientsdk.APISubject(clientsdk.VerbPush), []byte(c.body))
			if e == nil {
				t.Fatalf("push accepted %s", c.name)
			}
			if e.Code != c.code {
				t.Errorf("push: %v; want code %d", e, c.code)
			}
			for _, w := range c.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q does not name %q", e.Message, w)
				}
			}
		})
	}
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithConn(nc))
	if err != nil {
		t.Fatal(err)
	}
	if apps, err := c.List(context.Background()); err != nil || len(apps) != 0 {
		t.Errorf("List after refused pushes = %+v, %v; want no apps", apps, err)
	}
	// The same refusals from the Go client, before it uploads anything.
	_, err = c.Push(context.Background(), clientsdk.AppSpec{Name: "bad", Runtime: clientsdk.RuntimeCommand,
		Command: []string{"/bin/true"}, Port: 70000}, "", nil)
	if e, ok := clientsdk.AsError(err); !ok || e.Code != 400 || e.Type != clientsdk.TypeInvalidSpec {
		t.Errorf("Client.Push with port 70000 = %v; want *Error 400 %s", err, clientsdk.TypeInvalidSpec)
	}
}
