package deploy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/dartup/dartup/internal/schemalite"
)

// SchemaJSON is the JSON Schema of dartup.yaml (docs/dartup.schema.json
// is a copy, for editors).
//
//go:embed dartup.schema.json
var SchemaJSON []byte

// compiledSchema compiles the schema the first time a file is checked (not
// at start-up: most dartup commands never read a deploy file).
var compiledSchema = sync.OnceValues(func() (*schemalite.Schema, error) {
	return schemalite.Compile(SchemaJSON)
})

// patternHints say in words what the schema's patterns allow; a pattern
// without one is reported as the regular expression itself
// (TestPatternHints keeps this list and the schema in step).
var patternHints = map[string]string{
	`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`:          "not a name: 1 to 64 letters, digits, '-' and '_', starting with a letter or digit (names become NATS subject tokens)",
	`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`: "not a duration: give a number with a unit (ns, us, ms, s, m, h), e.g. 30s, 1m30s or 500ms, or seconds as a number",
	`^/`:                    "must be an absolute path (starting with /)",
	`^[A-Za-z0-9.-]*/`:      "not a route: give /PREFIX or HOST/PREFIX, e.g. /api or example.com/",
	`^(none|tcp|http:/.*)$`: "must be none, tcp or http:/PATH",
	`^(tcp|http:/.*)$`:      "must be tcp or http:/PATH",
	`^[A-Za-z*]+ +/`:        "must be METHOD /path, e.g. GET /hello or ANY /users/{id}",
	`^([A-Za-z]+|\*)$`:      "must be an HTTP method (GET, POST, …), ANY or *",
}

// schemaErrorLimit bounds the schema errors looked at: enough for
// maxErrors problems once those at the same field are merged.
const schemaErrorLimit = 4 * maxErrors

// checkSchema validates the document against the schema, reporting each
// failing field once with its line, in the order of the file.
func (d *doc) checkSchema() {
	schema, err := compiledSchema()
	if err != nil {
		d.add("", "the built-in schema does not compile: %v", err)
		return
	}
	var v any
	if d.root.Decode(&v) != nil {
		return // the typed decode reports it
	}
	inst, err := jsonValue(v)
	if err != nil {
		d.add("", "the file cannot be checked: %v", err)
		return
	}
	errs := schema.Validate(inst, schemaErrorLimit)
	slices.SortStableFunc(errs, func(a, b schemalite.Error) int {
		return d.line(pointerField(a.Pointer)) - d.line(pointerField(b.Pointer))
	})
	seen := map[string]bool{}
	for _, e := range errs {
		field := pointerField(e.Pointer)
		if seen[field] {
			continue
		}
		seen[field] = true
		msg := e.Message
		if hint, ok := patternHints[e.Pattern]; ok && e.Keyword == "pattern" {
			msg = hint
		}
		d.add(field, "%s", msg)
	}
}

// jsonValue turns a value decoded from YAML into the JSON one the schema
// speaks of: maps with text keys, lists, text, json.Number, booleans, null.
func jsonValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	err = dec.Decode(&out)
	return out, err
}

// pointerField turns a JSON pointer (/apps/web/http/0) into the field
// names problems use (apps.web.http[0]).
func pointerField(ptr string) string {
	var b strings.Builder
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		if strings.Trim(tok, "0123456789") == "" {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}
