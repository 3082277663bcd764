package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

func TestMain(m *testing.M) {
	code := m.Run()
	_ = os.RemoveAll(scratchHome)
	os.Exit(code)
}

// walk calls fn on cmd and every command below it, including cobra's own
// help and completion commands.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walk(c, fn)
	}
}

func fullTree() *cobra.Command {
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return root
}

// TestEveryCommandHasExample: every command's --help shows an Example.
func TestEveryCommandHasExample(t *testing.T) {
	t.Parallel()
	n := 0
	walk(fullTree(), func(c *cobra.Command) {
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		if c.Short == "" {
			t.Errorf("%q has no Short description", c.CommandPath())
		}
		if c.Runnable() && c.RunE == nil && c.Name() != "help" {
			t.Errorf("%q uses Run instead of RunE", c.CommandPath())
		}
	})
	for _, name := range []string{"serve", "password", "list", "info", "version", "completion"} {
		if c, _, err := fullTree().Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("no %q command", name)
		}
	}
	if n < 8 {
		t.Errorf("walked only %d commands", n)
	}
}

// TestHelpShowsExamples runs --help of each top-level command through the
// binary, as a user would.
func TestHelpShowsExamples(t *testing.T) {
	t.Parallel()
	for _, c := range fullTree().Commands() {
		r := runCLI(t, "", nil, c.Name(), "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("dartup %s --help: exit %d, no Examples section:\n%s%s", c.Name(), r.code, r.stdout, r.stderr)
		}
	}
}

// readCommands print state and must offer --json.
var readCommands = []string{"list", "info", "version", "nodes", "logs", "describe", "status", "routes", "dlq ls", "dlq show"}

func TestReadCommandsHaveJSON(t *testing.T) {
	t.Parallel()
	root := fullTree()
	for _, name := range readCommands {
		c, _, err := root.Find(strings.Fields(name))
		if err != nil || c == root {
			continue // not (yet) a command
		}
		if c.Flags().Lookup("json") == nil {
			t.Errorf("read command %q has no --json", c.CommandPath())
		}
	}
}

// TestClientCommandsHaveConnectionFlags: every command that talks to a server
// takes the same connection flags.
func TestClientCommandsHaveConnectionFlags(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"list", "info"} {
		c, _, _ := fullTree().Find([]string{name})
		for _, f := range []string{"server", "user", "password", "basic-auth", "context"} {
			if c.Flags().Lookup(f) == nil {
				t.Errorf("%s has no --%s", name, f)
			}
		}
		if c.Flags().ShorthandLookup("s") == nil || c.Flags().ShorthandLookup("B") == nil {
			t.Errorf("%s lacks -s or -B", name)
		}
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	dead := "nats://127.0.0.1:1" // nothing listens on port 1
	tmp := t.TempDir()
	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   string // in stderr
	}{
		{"help", "", []string{"--help"}, 0, ""},
		{"version", "", []string{"version"}, 0, ""},
		{"version flag", "", []string{"--version"}, 0, ""},
		{"unknown command", "", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", "", []string{"list", "--frob"}, 2, "unknown flag"},
		{"unknown root flag", "", []string{"--frob"}, 2, "unknown flag"},
		{"flag without value", "", []string{"list", "-s"}, 2, "flag needs an argument"},
		{"bad flag value", "", []string{"list", "--connect-timeout", "soon"}, 2, "invalid argument"},
		{"list with an invalid name", "", []string{"list", "a.b"}, 2, ""},
		{"info with two arguments", "", []string{"info", "a", "b"}, 2, "accepts at most 1"},
		{"password without user", "", []string{"password", "--data", tmp}, 2, "accepts 1"},
		{"password bad user", "pw\n", []string{"password", "--password-stdin", "a:b", "--data", tmp}, 2, "user name"},
		{"password empty stdin", "", []string{"password", "--password-stdin", "alice", "--data", tmp}, 2, "no password"},
		{"password no terminal", "", []string{"password", "alice", "--data", tmp}, 2, "--password-stdin"},
		{"delete unknown user", "", []string{"password", "--delete", "nobody", "--data", tmp}, 1, "no such user"},
		{"serve bad log format", "", []string{"serve", "--data", tmp, "--log-format", "xml"}, 2, "--log-format"},
		{"serve bad port", "", []string{"serve", "--data", tmp, "-p", "70000"}, 2, "--port"},
		{"serve bad nats addr", "", []string{"serve", "--data", tmp, "--nats-addr", "nohost"}, 2, "host:port"},
		{"serve address with a port", "", []string{"serve", "--data", tmp, "-a", "127.0.0.1:8080"}, 2, "--address 127.0.0.1 --port 8080"},
		{"serve address not a host", "", []string{"serve", "--data", tmp, "-a", "http://x"}, 2, "not a host or IP"},
		{"serve on all interfaces", "", []string{"serve", "--data", tmp, "-a", "0.0.0.0"}, 2, "--require-password"},
		{"no server", "", []string{"list", "-s", dead, "--connect-timeout", "2s"}, 1, "cannot reach dartup"},
		{"info no server", "", []string{"info", "-s", dead, "--connect-timeout", "2s"}, 1, "cannot reach dartup"},
		{"password without user flag", "", []string{"list", "-s", dead, "--password", "x"}, 2, "without a user"},
		{"basic auth without terminal", "", []string{"list", "-s", dead, "-B"}, 2, "terminal"},
		{"unknown nats context", "", []string{"list", "--context", "no-such-context"}, 2, "no-such-context"},
		{"invalid app name", "", []string{"info", "a.b", "-s", dead, "--connect-timeout", "2s"}, 1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, tc.stdin, nil, tc.args...)
			if r.code != tc.code {
				t.Errorf("dartup %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.msg != "" && !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("dartup %s: stderr does not say %q:\n%s", strings.Join(tc.args, " "), tc.msg, r.stderr)
			}
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
				t.Errorf("dartup %s panicked:\n%s", strings.Join(tc.args, " "), r.stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "jetstream")); err == nil {
		t.Error("a refused serve started JetStream in the data dir")
	}
}

func TestVersionJSON(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "", nil, "version", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"version"`) || !strings.Contains(r.stdout, `"nats_server"`) {
		t.Errorf("dartup version --json: %+v", r)
	}
}

// TestPrintAppInfoOddSpecs: printing never panics on a spec with missing or
// short fields (specs come from the store and may be old or hand-written).
func TestPrintAppInfoOddSpecs(t *testing.T) {
	t.Parallel()
	for _, ai := range []*clientsdk.AppInfo{
		{},
		{Spec: clientsdk.AppSpec{Name: "x", Artifact: &clientsdk.ArtifactRef{SHA256: "abc"}}},
		{Spec: clientsdk.AppSpec{Name: "x", Kind: clientsdk.KindLambda, Lambda: &clientsdk.LambdaSpec{}}},
		{Spec: clientsdk.AppSpec{Name: "x", Kind: clientsdk.KindDaemon}, Summary: clientsdk.AppSummary{Instances: []clientsdk.InstanceStatus{{}}}},
	} {
		var b strings.Builder
		if err := printAppInfo(&b, ai, false); err != nil {
			t.Error(err)
		}
	}
	var b strings.Builder
	if err := printServerInfo(&b, &clientsdk.ServerInfo{}); err != nil {
		t.Error(err)
	}
	if err := printList(&b, nil, false, true); err != nil || !strings.Contains(b.String(), "No active applications.") {
		t.Errorf("printList(empty): %v %q", err, b.String())
	}
}

// TestPrintAppInfoText: info NAME shows what a person needs: the command
// quoted as a shell takes it, args, env names (values only with
// --show-env), routes, readiness, constraints; no #-1 for app-level events.
func TestPrintAppInfoText(t *testing.T) {
	ai := &clientsdk.AppInfo{
		Spec: clientsdk.AppSpec{Name: "web", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Instances: 2,
			Command: []string{"/bin/sh", "-c", "echo 'hi there'"}, Args: []string{"--port", "80 80"}, Cwd: "/srv/web",
			Env: map[string]string{"TOKEN": "s3cret", "MODE": "prod"}, HTTP: []clientsdk.HTTPRoute{{Prefix: "/shop"}},
			Ready: "http:/healthz", ReadyTimeout: clientsdk.Duration(time.Minute), Constraints: map[string]string{"zone": "a"}},
		Events: []clientsdk.Event{{App: "web", Kind: clientsdk.EventPushed, Instance: -1, Message: "revision 1"}},
	}
	var b strings.Builder
	if err := printAppInfo(&b, ai, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{`command: /bin/sh -c 'echo '\''hi there'\'''`, `args: --port '80 80'`, "cwd: /srv/web", "env: MODE TOKEN  (values with --show-env)",
		"http: /shop", "ready: http:/healthz within 1m0s", "constraints: zone=a", "pushed     revision 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("info lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "#-1") {
		t.Errorf("info shows an env value or #-1:\n%s", out)
	}
	b.Reset()
	_ = printAppInfo(&b, ai, true)
	if !strings.Contains(b.String(), "TOKEN=s3cret") {
		t.Errorf("--show-env does not show the values:\n%s", b.String())
	}
}

func TestPrintableHidesControls(t *testing.T) {
	for in, want := range map[string]string{
		"plain\ttext ünïcode":      "plain\ttext ünïcode",
		"\x1b[1A\x1b[2K\r fake":    `\x1b[1A\x1b[2K\x0d fake`,
		"title\x1b]0;pwned\x07end": `title\x1b]0;pwned\x07end`,
		"c1\u009bcsi":              `c1\x9bcsi`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// An app's error text quoted by list, list --wide and info cannot write
// control characters to the terminal.
func TestListShowsNoControlCharacters(t *testing.T) {
	evil := "boom\x1b[2J\x1b]0;pwned\x07"
	a := clientsdk.AppSummary{Name: "x", Kind: clientsdk.KindDaemon, State: clientsdk.AppError, Message: "#0: " + evil,
		Instances: []clientsdk.InstanceStatus{{App: "x", State: clientsdk.StateErrored, Node: "n\x1b", LastError: evil}}}
	var b strings.Builder
	for _, wide := range []bool{false, true} {
		if err := printList(&b, []clientsdk.AppSummary{a}, false, wide); err != nil {
			t.Fatal(err)
		}
	}
	if strings.ContainsAny(b.String(), "\x1b\x07") {
		t.Fatalf("list wrote control characters: %q", b.String())
	}
}

func TestOnlyNamed(t *testing.T) {
	apps := []clientsdk.AppSummary{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	if got, err := onlyNamed(apps, nil); err != nil || len(got) != 3 {
		t.Errorf("no names: %v %v", got, err)
	}
	if got, err := onlyNamed(apps, []string{"c", "a"}); err != nil || len(got) != 2 || got[0].Name != "c" || got[1].Name != "a" {
		t.Errorf("c a: %v %v", got, err)
	}
	if _, err := onlyNamed(apps, []string{"a", "zz"}); !errors.Is(err, clientsdk.ErrNotFound) || !strings.Contains(err.Error(), "zz") {
		t.Errorf("unknown name: %v", err)
	}
}
