package deploy

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

// project makes a folder with the deploy file text and the artifacts the
// test files name: ./bootstrap and ./web (executables), ./site/bin/server.
func project(t *testing.T, name, text string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"bootstrap", "web", "site/bin/server", "site/public/index.html"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho "+f+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadExample(t *testing.T) {
	text, err := os.ReadFile("testdata/dartup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := project(t, "dartup.yaml", string(text))
	p, err := Load(path, Options{Getenv: env(map[string]string{"SHOP_DB_URL": "postgres://db"})})
	if err != nil {
		t.Fatal(err)
	}
	if p.Service != "shop" || len(p.Entries) != 4 {
		t.Fatalf("service %q, %d entries", p.Service, len(p.Entries))
	}
	by := map[string]Entry{}
	for _, e := range p.Entries {
		by[e.Spec.Name] = e
		if e.Spec.Service != "shop" {
			t.Errorf("%s: service %q", e.Spec.Name, e.Spec.Service)
		}
	}
	web := by["web"].Spec
	if web.Kind != clientsdk.KindDaemon || web.Instances != 2 || len(web.HTTP) != 2 || web.Env["DB_URL"] != "postgres://db" ||
		web.Bundle == nil || web.Bundle.Entry != "bin/server" || web.HealthInterval.D().Seconds() != 10 ||
		web.Restart.MaxRestarts != 5 || web.Restart.RestartDelay.D().Milliseconds() != 500 || web.History != 5 {
		t.Errorf("web: %+v", web)
	}
	if by["web"].Source.Path != filepath.Join(filepath.Dir(path), "site") {
		t.Errorf("web source %+v", by["web"].Source)
	}
	post := by["postRequest"].Spec.Lambda
	if post.Handler != "main.postRequest" || len(post.Routes) != 2 || post.Routes[1].String() != "GET /users/{id}" {
		t.Errorf("postRequest: %+v", post)
	}
	hello := by["hello"].Spec.Lambda
	if hello.MemoryMB != 256 || hello.KeepWarm == nil || *hello.KeepWarm != 0 || hello.Timeout.D().Seconds() != 10 {
		t.Errorf("hello: %+v", hello)
	}
	if tick := by["tick"]; tick.Spec.Runtime != clientsdk.RuntimeCommand || tick.Source.Path != "" {
		t.Errorf("tick: %+v", tick)
	}
	tl := by["tick"].Spec.Lambda
	if a := tl.Async; a == nil || a.Retries == nil || *a.Retries != 5 || len(a.RetryBackoff) != 2 || a.RetryBackoff[0].D().Milliseconds() != 100 ||
		a.MaxEventAge.D().Hours() != 1 || a.OnFailure != "tick.failed" {
		t.Errorf("tick async: %+v", tl.Async)
	}
	if len(tl.Schedules) != 2 || tl.Schedules[0].Cron != "@every 30s" || tl.Schedules[1].TimeZone != "Europe/Berlin" {
		t.Errorf("tick schedules: %+v", tl.Schedules)
	}
}

func TestLoadProblems(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // each must appear in the error
	}{
		{"unknown key with line", "apps:\n  web:\n    artifact: ./web\n    instnaces: 2\n",
			[]string{"dartup.yaml:4: apps.web.instnaces: unknown key \"instnaces\" (did you mean instances?)"}},
		{"unknown top key", "services: x\napps:\n  web: {artifact: ./web}\n", []string{"dartup.yaml:1: services: unknown key", "did you mean service?"}},
		{"wrong type", "apps:\n  web:\n    artifact: ./web\n    instances: many\n", []string{"dartup.yaml:4: apps.web.instances: must be an integer, got a string"}},
		{"bound with line", "apps:\n  web:\n    artifact: ./web\n    instances: 2000\n", []string{"dartup.yaml:4: apps.web.instances: must be <= 1024, got 2000"}},
		{"zero instances", "apps:\n  web:\n    artifact: ./web\n    instances: 0\n", []string{"dartup.yaml:4: apps.web.instances: must be >= 1"}},
		{"bound the schema does not know", "apps:\n  web:\n    artifact: ./web\n    port: 65535\n    instances: 2\n", []string{"dartup.yaml:4: apps.web: port is 65535 with 2 instances"}},
		{"missing artifact", "functions:\n  f:\n    artifact: ./nope\n", []string{"dartup.yaml:3: functions.f.artifact: ./nope does not exist"}},
		{"no artifact", "apps:\n  web:\n    instances: 2\n", []string{"dartup.yaml:2: apps.web: give artifact:"}},
		{"folder without entry", "apps:\n  web:\n    artifact: ./site\n", []string{"apps.web.artifact: ./site is a folder: give the program in it with entry:"}},
		{"env not set", "apps:\n  web:\n    artifact: ./web\n    env: {A: \"${env:NOPE}\"}\n", []string{"dartup.yaml:4:", "NOPE is not set"}},
		{"other reference", "apps:\n  web:\n    artifact: ./web\n    args: [\"${self:x}\"]\n", []string{"only ${env:VAR}"}},
		{"bad route", "functions:\n  f:\n    artifact: ./bootstrap\n    events:\n      - http: {path: \"/a/{x+}/b\", method: GET}\n",
			[]string{"dartup.yaml:5: functions.f.events[0].http:", "last segment"}},
		{"route clash", "functions:\n  f:\n    artifact: ./bootstrap\n    events: [http: GET /a]\n  g:\n    artifact: ./bootstrap\n    events: [http: ANY /a]\n",
			[]string{"dartup.yaml:7: functions.g.events: route ANY /a clashes with f's (GET /a)"}},
		{"route under a plain lambda of the file", "functions:\n  f:\n    artifact: ./bootstrap\n  g:\n    artifact: ./bootstrap\n    events: [http: GET /f/x]\n",
			[]string{"functions.g.events: route GET /f/x clashes with f's"}},
		{"daemon key on a function", "functions:\n  f:\n    artifact: ./bootstrap\n    instances: 2\n", []string{"dartup.yaml:4: functions.f.instances: unknown key"}},
		{"bad name", "apps:\n  a.b:\n    artifact: ./web\n", []string{"dartup.yaml:2: apps.a.b: not a name"}},
		{"name with a space", "apps:\n  my app:\n    artifact: ./web\n", []string{"dartup.yaml:2: apps.my app: not a name"}},
		{"name with an escape", "apps:\n  \"a\\ndartup.yaml:1: \\u001b[2J\":\n    artifact: ./web\n", []string{`dartup.yaml:2: "apps.a\ndartup.yaml:1: \x1b[2J": not a name`}},
		{"same name twice", "apps:\n  x: {artifact: ./web}\nfunctions:\n  x: {artifact: ./bootstrap}\n", []string{"also declared under apps"}},
		{"empty", "", []string{"the file is empty"}},
		{"not yaml", "apps: [\n", []string{"dartup.yaml:"}},
		{"non-text key does not hide the rest", "apps:\n  a:\n    artifact: ./web\n    runtime: bogus\n    env: {1: x}\n", []string{"dartup.yaml:4: apps.a.runtime: must be one of: exe, aot, kernel, command; got \"bogus\""}},
		{"reference in a key", "apps:\n  a:\n    artifact: ./web\n    env: {\"${env:K}\": x}\n", []string{"references work in values, not in keys"}},
		{"null app name", "apps:\n  ~:\n    artifact: ./web\n", []string{"dartup.yaml:2: apps.~: not a name"}},
		{"bad schedule", "functions:\n  f:\n    artifact: ./bootstrap\n    events: [schedule: \"@every 100ms\"]\n", []string{"dartup.yaml:4: functions.f.events[0].schedule:", "at least 1s"}},
		{"bad destination", "functions:\n  f:\n    artifact: ./bootstrap\n    async: {on_success: dartup.api.push}\n", []string{"on_success", "outside dartup"}},
		{"rate in dartup.yaml", "functions:\n  f:\n    artifact: ./bootstrap\n    events: [schedule: {rate: 5 minutes}]\n", []string{"functions.f.events[0].schedule"}},
		{"duration in words", "functions:\n  f:\n    artifact: ./bootstrap\n    timeout: 10 seconds\n",
			[]string{"dartup.yaml:4: functions.f.timeout: not a duration: give a number with a unit (ns, us, ms, s, m, h), e.g. 30s, 1m30s or 500ms, or seconds as a number"}},
		{"duration of the wrong type", "functions:\n  f:\n    artifact: ./bootstrap\n    keep_warm: true\n",
			[]string{"dartup.yaml:4: functions.f.keep_warm: must be a string or a number, got a boolean"}},
		{"route method: the form that fits", "functions:\n  f:\n    artifact: ./bootstrap\n    events:\n      - http: {path: /a, method: \"G T\"}\n",
			[]string{"dartup.yaml:5: functions.f.events[0].http.method: must be an HTTP method (GET, POST, …), ANY or *"}},
		{"route without path", "functions:\n  f:\n    artifact: ./bootstrap\n    events:\n      - http: {method: GET}\n",
			[]string{"dartup.yaml:5: functions.f.events[0].http: missing required field \"path\""}},
		{"two triggers in one event", "functions:\n  f:\n    artifact: ./bootstrap\n    events:\n      - {http: GET /a, schedule: '@daily'}\n",
			[]string{"dartup.yaml:5: functions.f.events[0]: must have at most 1 field, got 2: http, schedule"}},
		{"in the order of the file", "apps:\n  web:\n    artifact: ./web\n    cwd: rel\n    ready: foo\n    http: [api]\n    command: []\n    history: 0\n",
			[]string{"dartup.yaml:4: apps.web.cwd: must be an absolute path (starting with /)\n" +
				"dartup.yaml:5: apps.web.ready: must be none, tcp or http:/PATH\n" +
				"dartup.yaml:6: apps.web.http[0]: not a route: give /PREFIX or HOST/PREFIX, e.g. /api or example.com/\n" +
				"dartup.yaml:7: apps.web.command: must have at least 1 item, got 0\n" +
				"dartup.yaml:8: apps.web.history: must be >= 1, got 0"}},
		{"app of the wrong type", "apps:\n  web: [1]\n", []string{"dartup.yaml:2: apps.web: must be an object or null, got an array"}},
		{"several at once", "apps:\n  a:\n    artifact: ./web\n    foo: 1\n  b:\n    artifact: ./web\n    bar: 2\n", []string{":4: apps.a.foo", ":7: apps.b.bar"}},
	} {
		path := project(t, "dartup.yaml", tc.text)
		_, err := Load(path, Options{Getenv: env(nil)})
		if err == nil {
			t.Errorf("%s: loaded, want an error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\nlacks %q", tc.name, err, w)
			}
		}
	}
}

func TestLoadServerless(t *testing.T) {
	text, err := os.ReadFile("testdata/serverless.yml")
	if err != nil {
		t.Fatal(err)
	}
	path := project(t, "serverless.yml", string(text))
	if _, err := Load(path, Options{Getenv: env(nil)}); err == nil || !strings.Contains(err.Error(), "--artifact") {
		t.Fatalf("without a bootstrap: %v", err)
	}
	p, err := Load(path, Options{Getenv: env(nil), Artifact: filepath.Join(filepath.Dir(path), "bootstrap")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Service != "hello" || len(p.Entries) != 2 {
		t.Fatalf("%+v", p)
	}
	for _, e := range p.Entries {
		l := e.Spec.Lambda
		if e.Spec.Kind != clientsdk.KindLambda || l.MemoryMB != 128 || l.Handler != "main."+e.Spec.Name || len(l.Routes) != 1 {
			t.Errorf("%s: %+v", e.Spec.Name, l)
		}
	}
	for _, e := range p.Entries {
		if want := map[string]int{"hello": 0, "postRequest": 1}[e.Spec.Name]; len(e.Spec.Lambda.Schedules) != want ||
			want == 1 && e.Spec.Lambda.Schedules[0].Cron != "@every 5m" {
			t.Errorf("%s schedules: %+v", e.Spec.Name, e.Spec.Lambda.Schedules)
		}
	}
	ignored := strings.Join(p.Ignored, " ")
	for _, w := range []string{"provider.lambdaHashingVersion", "package.individually", "plugins", "cors"} {
		if !strings.Contains(ignored, w) {
			t.Errorf("ignored %q lacks %s", ignored, w)
		}
	}
}

func TestSchemaCopyInDocs(t *testing.T) {
	docs, err := os.ReadFile("../docs/dartup.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(docs) != string(SchemaJSON) {
		t.Fatal("docs/dartup.schema.json differs from deploy/dartup.schema.json: cp deploy/dartup.schema.json docs/")
	}
}

// TestSchemaKnowsEveryKey keeps the schema and the Go types in step: every
// key the loader takes is in the schema, and the schema has no other.
func TestSchemaKnowsEveryKey(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(SchemaJSON, &schema); err != nil {
		t.Fatal(err)
	}
	props := func(m any, path ...string) map[string]any {
		for _, p := range path {
			m = m.(map[string]any)[p]
		}
		return m.(map[string]any)
	}
	for _, tc := range []struct {
		name   string
		schema map[string]any
		typ    reflect.Type
	}{
		{"top", props(schema, "properties"), reflect.TypeOf(File{})},
		{"app", props(schema, "properties", "apps", "additionalProperties", "properties"), reflect.TypeOf(App{})},
		{"function", props(schema, "properties", "functions", "additionalProperties", "properties"), reflect.TypeOf(Function{})},
		{"restart", props(schema, "properties", "apps", "additionalProperties", "properties", "restart", "properties"), reflect.TypeOf(Restart{})},
	} {
		keys := yamlFields(tc.typ)
		for k := range keys {
			if _, ok := tc.schema[k]; !ok {
				t.Errorf("%s: the loader takes %q, the schema does not have it", tc.name, k)
			}
		}
		for k := range tc.schema {
			if _, ok := keys[k]; !ok {
				t.Errorf("%s: the schema has %q, the loader does not take it", tc.name, k)
			}
		}
	}
}

// ${env:…} values are text where the field is text, whatever they look
// like, and typed where it is a number.
func TestLoadEnvTyping(t *testing.T) {
	path := project(t, "dartup.yaml", `apps:
  web:
    artifact: ./web
    instances: ${env:N}
    ready_timeout: ${env:RT}
    env:
      PORTX: ${env:PX}
      EMPTY: ${env:EMPTYV}
      FLAG: "${env:FL}"
      TILDE: ${env:TI}
      DEF: ${env:NOPE, }
      PLAIN: 8080
`)
	p, err := Load(path, Options{Getenv: env(map[string]string{"N": "3", "RT": "45s", "PX": "8080", "EMPTYV": "", "FL": "true", "TI": "~"})})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Entries[0].Spec
	want := map[string]string{"PORTX": "8080", "EMPTY": "", "FLAG": "true", "TILDE": "~", "DEF": "", "PLAIN": "8080"}
	if s.Instances != 3 || s.ReadyTimeout.D().Seconds() != 45 || !maps.Equal(s.Env, want) {
		t.Errorf("instances %d, ready_timeout %s, env %q", s.Instances, s.ReadyTimeout.D(), s.Env)
	}
}

func TestRouteConflicts(t *testing.T) {
	fn := func(name string, routes ...clientsdk.FunctionRoute) *clientsdk.AppSpec {
		return &clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Lambda: &clientsdk.LambdaSpec{Routes: routes}}
	}
	table := []clientsdk.RouteInfo{
		{Method: "GET", Path: "/rc", Kind: clientsdk.KindLambda, App: "other"},
		{Method: "*", Path: "/plain", Prefix: true, Kind: clientsdk.KindLambda, App: "plain"},
		{Method: "*", Path: "/", Prefix: true, Kind: clientsdk.KindDaemon, App: "site"},
		{Method: "GET", Path: "/mine", Kind: clientsdk.KindLambda, App: "mine"},
	}
	plan := Plan{Steps: []Step{
		{Action: Create, App: "a", Spec: fn("a", clientsdk.FunctionRoute{Method: "ANY", Path: "/rc"})},
		{Action: Create, App: "b", Spec: fn("b", clientsdk.FunctionRoute{Method: "GET", Path: "/plain/x"})},
		{Action: Update, App: "mine", Spec: fn("mine", clientsdk.FunctionRoute{Method: "GET", Path: "/mine"})},
		{Action: Create, App: "c", Spec: &clientsdk.AppSpec{Name: "c", Kind: clientsdk.KindDaemon, HTTP: []clientsdk.HTTPRoute{{Prefix: "/"}}}},
		{Action: Create, App: "d", Spec: fn("d", clientsdk.FunctionRoute{Method: "GET", Path: "/free"})},
	}}
	got := strings.Join(RouteConflicts(plan, table), "\n")
	for _, w := range []string{"a: route ANY /rc is taken by lambda other", "b: route GET /plain/x is taken by lambda plain", "c: route / is taken by daemon site"} {
		if !strings.Contains(got, w) {
			t.Errorf("conflicts lack %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "mine") || strings.Contains(got, "d:") {
		t.Errorf("conflicts name an app of the file's own or a free route:\n%s", got)
	}
}

func TestAWSSchedules(t *testing.T) {
	for in, want := range map[string]string{
		"rate(5 minutes)":         "@every 5m",
		"rate(1 hour)":            "@every 1h",
		"rate(2 days)":            "@every 48h",
		"cron(0 12 * * ? *)":      "0 0 12 * * *",
		"cron(15 10 ? * 2-6 *)":   "0 15 10 * * 1-5", // Monday to Friday
		"cron(0 8 ? * 1,7 *)":     "0 0 8 * * 0,6",   // Sunday and Saturday
		"cron(0 8 ? * MON-FRI *)": "0 0 8 * * MON-FRI",
		"cron(0 8 ? * 6#3 *)":     "0 0 8 * * 5#3",
		"@every 30s":              "@every 30s",
	} {
		if got, msg := awsSchedule(in); got != want || msg != "" {
			t.Errorf("awsSchedule(%q) = %q %q, want %q", in, got, msg, want)
		}
	}
	for _, in := range []string{"rate(five minutes)", "cron(0 12 * * ? 2027)", "cron(0 12 * *)"} {
		if _, msg := awsSchedule(in); msg == "" {
			t.Errorf("awsSchedule(%q) accepted", in)
		}
	}
}
