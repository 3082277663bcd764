package deploy

import (
	"encoding/json"
	"maps"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	refschema "github.com/santhosh-tekuri/jsonschema/v5"
	"gopkg.in/yaml.v3"
)

// The differential tests hold internal/schemalite to what
// santhosh-tekuri/jsonschema (the library dartup used before, now a test
// dependency only) says of the same documents: the same set of failing
// fields. A failing oneOf counts as one field, at the oneOf's place: the
// library reports every alternative's failures there, ours the best
// alternative's, which may be deeper.

// referenceSchema compiles SchemaJSON with the library.
func referenceSchema(t testing.TB) *refschema.Schema {
	t.Helper()
	s, err := refschema.CompileString("dartup.schema.json", string(SchemaJSON))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// failingFields returns the JSON pointers of the values each validator
// finds failing in inst, sorted; none when inst is valid.
func failingFields(t testing.TB, ref *refschema.Schema, inst any) (ours, theirs []string) {
	t.Helper()
	var oneOfs []string
	seen := map[string]bool{}
	var walk func(e *refschema.ValidationError)
	walk = func(e *refschema.ValidationError) {
		loc := unescapeURL(t, e.InstanceLocation)
		if strings.HasSuffix(e.KeywordLocation, "/oneOf") {
			oneOfs = append(oneOfs, loc)
			seen[loc] = true
			return // its causes are every alternative's failures
		}
		if len(e.Causes) == 0 {
			seen[loc] = true
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	if err := ref.Validate(inst); err != nil {
		ve, ok := err.(*refschema.ValidationError)
		if !ok {
			t.Fatalf("reference: %v", err)
		}
		walk(ve)
	}
	for p := range seen {
		theirs = append(theirs, p)
	}
	schema, err := compiledSchema()
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, e := range schema.Validate(inst, 0) {
		if e.Message == "" || e.Keyword == "" {
			t.Errorf("an error without message or keyword: %+v", e)
		}
		p := e.Pointer
		for _, o := range oneOfs { // the outermost oneOf that holds p
			if (p == o || strings.HasPrefix(p, o+"/")) && len(o) < len(p) {
				p = o
			}
		}
		mine[p] = true
	}
	for p := range mine {
		ours = append(ours, p)
	}
	slices.Sort(ours)
	slices.Sort(theirs)
	return ours, theirs
}

// unescapeURL undoes the URL escaping the library adds to each token of
// its JSON pointers ("/apps/0%200" is the app "0 0").
func unescapeURL(t testing.TB, ptr string) string {
	toks := strings.Split(ptr, "/")
	for i, tok := range toks {
		u, err := url.PathUnescape(tok)
		if err != nil {
			t.Fatalf("reference pointer %q: %v", ptr, err)
		}
		toks[i] = u
	}
	return strings.Join(toks, "/")
}

// readJSON reads a testdata YAML file as the validator is given it.
func readJSON(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	j, err := jsonValue(v)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return j
}

// TestSchemaMatchesReference: the testdata files and 1000 documents mutated
// from them (valid and invalid) fail at the same fields for both.
func TestSchemaMatchesReference(t *testing.T) {
	ref := referenceSchema(t)
	bases := []any{readJSON(t, "testdata/dartup.yaml"), readJSON(t, "testdata/serverless.yml")}
	docs := slices.Clone(bases)
	rng := rand.New(rand.NewPCG(18, 1))
	for i := range 1000 {
		doc, _ := jsonValue(bases[i%6/5]) // a fresh copy; 5 of 6 from dartup.yaml
		for range 1 + rng.IntN(2) {
			doc = mutate(rng, doc)
		}
		docs = append(docs, doc)
	}
	valid := 0
	for i, doc := range docs {
		ours, theirs := failingFields(t, ref, doc)
		if !slices.Equal(ours, theirs) {
			b, _ := json.Marshal(doc)
			t.Errorf("document %d fails at %q here, at %q for the reference:\n%s", i, ours, theirs, b)
		}
		if len(theirs) == 0 {
			valid++
		}
	}
	if valid < 60 || len(docs)-valid < 200 {
		t.Errorf("%d valid and %d invalid documents: the mutations no longer test both", valid, len(docs)-valid)
	}
	t.Logf("%d documents, %d valid", len(docs), valid)
}

// mutate changes one place of doc: a value replaced by one of any type, a
// known field set to a value that is right or just wrong for it (bounds
// and their neighbours), a known key added, a key deleted, an item
// appended.
func mutate(rng *rand.Rand, doc any) any {
	good := goodValues()
	var slots []func(any) // each sets one place below the root
	var fields [][2]any   // {object, key} of the keys good has values for
	var objects []map[string]any
	var arrays []func(any) // each appends to one list
	var walk func(v any, set func(any))
	walk = func(v any, set func(any)) {
		switch x := v.(type) {
		case map[string]any:
			objects = append(objects, x)
			for _, k := range slices.Sorted(maps.Keys(x)) {
				slots = append(slots, func(n any) { x[k] = n })
				if good[k] != nil {
					fields = append(fields, [2]any{x, k})
				}
				walk(x[k], func(n any) { x[k] = n })
			}
		case []any:
			arrays = append(arrays, func(n any) { set(append(x, n)) })
			for i := range x {
				slots = append(slots, func(n any) { x[i] = n })
				walk(x[i], func(n any) { x[i] = n })
			}
		}
	}
	walk(doc, func(n any) { doc = n })
	switch op := rng.IntN(10); {
	case op < 2 && len(slots) > 0:
		slots[rng.IntN(len(slots))](pick(rng, anyValues()))
	case op < 6 && len(fields) > 0:
		f := fields[rng.IntN(len(fields))]
		k := f[1].(string)
		f[0].(map[string]any)[k] = pick(rng, good[k])
	case op < 8 && len(objects) > 0:
		keys := slices.Sorted(maps.Keys(good))
		k := keys[rng.IntN(len(keys))]
		objects[rng.IntN(len(objects))][k], _ = jsonValue(good[k][0]) // the first is right for k
	case op < 9 && len(objects) > 0:
		o := objects[rng.IntN(len(objects))]
		if keys := slices.Sorted(maps.Keys(o)); len(keys) > 0 {
			delete(o, keys[rng.IntN(len(keys))])
		}
	case len(arrays) > 0:
		arrays[rng.IntN(len(arrays))](pick(rng, anyValues()))
	}
	return doc
}

func pick(rng *rand.Rand, vs []any) any {
	v, _ := jsonValue(vs[rng.IntN(len(vs))]) // a fresh copy
	return v
}

// anyValues are values of every type, most of them wrong wherever they go.
func anyValues() []any {
	return mustJSON(`["", "x", "30s", "/", "GET /", "a.b", 0, -1, 1, 1.5, 65536, true, null, [], ["a"], [1], {}, {"k": "v"}, {"path": "/x"}]`).([]any)
}

// goodValues are, per key, values right for it (the first always) and a
// few just wrong.
func goodValues() map[string][]any {
	m := mustJSON(`{
	"service": ["shop", "a.b"], "artifact": ["./web", ""], "entry": ["bin/x", "é", ""], "runtime": ["aot", "jit"],
	"command": [["x"], []], "interpreter": ["dart"], "cwd": ["/srv", "srv"], "args": [["-v"], [1]],
	"env": [{"A": "1"}, {"A": 1}], "constraints": [{"zone": "a"}], "history": [1, 100, 101, 0], "instances": [3, 1024, 1025, 0, 1.0, 2.5],
	"port": [8080, 65535, 0, 65536, -1], "http": [["/api", "h.example/"], ["api"]], "http_strip_prefix": [true, "yes"],
	"ready": ["tcp", "none", "http:/x", "udp"], "ready_timeout": ["1m30s", 5, -1, "5 s"], "health": ["tcp", "none"],
	"health_interval": ["10s", 2.5], "health_failures": [3], "parallel": [2], "restart": [{"auto": false}, {"max_restarts": -1}, {"delay": "x"}],
	"handler": ["main.x", "` + strings.Repeat("h", 256) + `", "` + strings.Repeat("é", 257) + `"], "protocol": ["nats", "grpc"], "memory": [512, 10240, 10241, 1.5], "timeout": ["30s", 0.5, true],
	"keep_warm": ["1m"], "max_workers": [4], "queue": [100, 100000, 100001], "http_event": ["alb", "apigw2"],
	"events": [[{"http": "GET /x"}], [{"http": {"path": "/x"}}], [{"schedule": "@daily"}], [{"schedule": {"cron": "0 * * * * *", "time_zone": "UTC"}}],
		[{"http": {"method": "GET"}}], [{}], [{"http": "GET /x", "schedule": "x"}], [{"http": {"path": "/x", "method": "G T"}}], [{"schedule": 5}]],
	"async": [{"retries": 3}, {"retry_backoff": ["1s", "x"]}, {"on_success": "a.ok", "max_event_age": "1h"}],
	"path": ["/p"], "method": ["POST", "G T"], "cron": ["0 * * * * *"], "time_zone": ["UTC"],
	"auto": [true], "max_restarts": [3], "min_uptime": ["1s"], "delay": ["2s"], "kill_timeout": ["5s", "5"],
	"stop_exit_codes": [[0, 143], [255], [256], [-1]], "retries": [2, 100, 101], "retry_backoff": [["1s"]], "max_event_age": ["1h"],
	"on_success": ["x.ok"], "on_failure": ["x.fail"],
	"apps": [{"a": null}, {"a.b": {}}, {"w": {"artifact": "./web", "instances": 2}}],
	"functions": [{"f": {"artifact": "./f"}}, {"f": {"events": [{"http": "GET /f"}], "timeout": "2s"}}],
	"bogus": [1]}`).(map[string]any)
	out := map[string][]any{}
	for k, v := range m {
		out[k] = v.([]any)
	}
	return out
}

func mustJSON(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	return v
}

// FuzzSchemaMatchesReference: for any YAML document, both validators fail
// at the same fields.
func FuzzSchemaMatchesReference(f *testing.F) {
	for _, seed := range []string{"testdata/dartup.yaml", "testdata/serverless.yml"} {
		b, err := os.ReadFile(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("functions: {f: {timeout: true, events: [http: {method: G T}]}}\n")
	ref := referenceSchema(f)
	f.Fuzz(func(t *testing.T, text string) {
		var v any
		if yaml.Unmarshal([]byte(text), &v) != nil {
			return
		}
		inst, err := jsonValue(v)
		if err != nil {
			return
		}
		if ours, theirs := failingFields(t, ref, inst); !slices.Equal(ours, theirs) {
			t.Errorf("fails at %q here, at %q for the reference", ours, theirs)
		}
	})
}
