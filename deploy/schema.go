package deploy

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// SchemaJSON is the JSON Schema of dartup.yaml (docs/dartup.schema.json
// is a copy, for editors).
//
//go:embed dartup.schema.json
var SchemaJSON []byte

var compiledSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	return jsonschema.CompileString("dartup.schema.json", string(SchemaJSON))
})

// checkSchema validates the document against the schema, reporting each
// failing field once with its line.
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
	b, err := json.Marshal(v)
	if err != nil {
		d.add("", "the file cannot be checked: %v", err)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var inst any
	if dec.Decode(&inst) != nil {
		return
	}
	err = schema.Validate(inst)
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return
	}
	seen := map[string]bool{}
	for _, leaf := range leaves(ve) {
		field := pointerField(leaf.InstanceLocation)
		if seen[field] {
			continue
		}
		seen[field] = true
		msg := leaf.Message
		if strings.Contains(msg, "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$") {
			msg = "not a name: 1 to 64 letters, digits, '-' and '_', starting with a letter or digit (names become NATS subject tokens)"
		}
		d.add(field, "%s", msg)
	}
}

// leaves returns the innermost causes of a validation error.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
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
