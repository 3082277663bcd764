package schemalite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	refschema "github.com/santhosh-tekuri/jsonschema/v5"
)

// decode reads a JSON instance as the validator is given it.
func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("instance %s: %v", s, err)
	}
	return v
}

// reference validates with santhosh-tekuri/jsonschema (draft-07): the
// cases below must agree with it on what is valid.
func reference(t *testing.T, schema string, inst any) bool {
	t.Helper()
	c := refschema.NewCompiler()
	c.Draft = refschema.Draft7
	if err := c.AddResource("s.json", strings.NewReader(schema)); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst) == nil
}

// TestKeywords: one table per keyword, valid and invalid values, with the
// exact errors (pointer: message) a person gets.
func TestKeywords(t *testing.T) {
	const name = `{"type": "string", "pattern": "^[a-z]+$"}`
	for _, tc := range []struct {
		keyword, schema, inst string
		want                  []string
	}{
		{"type", `{"type": "integer"}`, `3`, nil},
		{"type", `{"type": "integer"}`, `3.0`, nil},
		{"type", `{"type": "integer"}`, `"3"`, []string{`: must be an integer, got a string`}},
		{"type", `{"type": "integer"}`, `3.5`, []string{`: must be an integer, got a number`}},
		{"type", `{"type": "number"}`, `3`, nil},
		{"type", `{"type": ["object", "null"]}`, `null`, nil},
		{"type", `{"type": ["object", "null"]}`, `[1]`, []string{`: must be an object or null, got an array`}},
		{"type", `{"type": ["string", "boolean", "array"]}`, `{}`, []string{`: must be a string, a boolean or an array, got an object`}},
		{"type stops the rest", `{"type": "string", "minimum": 5}`, `1`, []string{`: must be a string, got an integer`}},
		{"enum", `{"enum": ["exe", "aot"]}`, `"aot"`, nil},
		{"enum", `{"enum": ["exe", "aot"]}`, `"bogus"`, []string{`: must be one of: exe, aot; got "bogus"`}},
		{"enum", `{"enum": [1, "a", null, [1]]}`, `1.0`, nil},
		{"enum", `{"enum": [1, "a", null, [1]]}`, `[1]`, nil},
		{"enum", `{"enum": [1, "a", null, [1]]}`, `{}`, []string{`: must be one of: 1, a, null, [1]; got an object`}},
		{"pattern", `{"pattern": "^/"}`, `"/srv"`, nil},
		{"pattern", `{"pattern": "^/"}`, `5`, nil},
		{"pattern", `{"pattern": "b"}`, `"abc"`, nil},
		{"pattern", `{"pattern": "^/"}`, `"srv"`, []string{`: "srv" does not match the pattern ^/`}},
		{"pattern", `{"pattern": "^/"}`, `"` + strings.Repeat("x", 100) + `"`, []string{`: "` + strings.Repeat("x", 64) + `"… does not match the pattern ^/`}},
		{"pattern", `{"pattern": "^/"}`, `"\u001b[31m"`, []string{`: "\x1b[31m" does not match the pattern ^/`}},
		{"minLength", `{"minLength": 1}`, `"a"`, nil},
		{"minLength", `{"minLength": 1}`, `""`, []string{`: must not be empty`}},
		{"minLength", `{"minLength": 3}`, `"µµ"`, []string{`: must be at least 3 characters long, got 2`}},
		{"maxLength", `{"maxLength": 2}`, `"µµ"`, nil},
		{"maxLength", `{"maxLength": 2}`, `"abc"`, []string{`: must be at most 2 characters long, got 3`}},
		{"minimum", `{"minimum": 1}`, `1`, nil},
		{"minimum", `{"minimum": 1}`, `0`, []string{`: must be >= 1, got 0`}},
		{"minimum", `{"minimum": 0}`, `-0.5`, []string{`: must be >= 0, got -0.5`}},
		{"maximum", `{"maximum": 1024}`, `1024`, nil},
		{"maximum", `{"maximum": 1024}`, `2000`, []string{`: must be <= 1024, got 2000`}},
		{"maximum", `{"maximum": 1024}`, `1e400`, []string{`: must be <= 1024, got 1e400`}},
		{"maximum", `{"maximum": 1024}`, `"2000"`, nil},
		{"items", `{"items": {"type": "string"}}`, `["a", "b"]`, nil},
		{"items", `{"items": {"type": "string"}}`, `["a", 1, true]`, []string{`/1: must be a string, got an integer`, `/2: must be a string, got a boolean`}},
		{"minItems", `{"minItems": 1}`, `[]`, []string{`: must have at least 1 item, got 0`}},
		{"maxItems", `{"maxItems": 2}`, `[1, 2, 3]`, []string{`: must have at most 2 items, got 3`}},
		{"maxItems", `{"maxItems": 2}`, `[1, 2]`, nil},
		{"properties", `{"properties": {"a": {"type": "string"}, "b/c~": {"type": "string"}}}`, `{"a": "x", "z": 1}`, nil},
		{"properties", `{"properties": {"a": {"type": "string"}, "b/c~": {"type": "string"}}}`, `{"a": 1, "b/c~": 2}`,
			[]string{`/a: must be a string, got an integer`, `/b~1c~0: must be a string, got an integer`}},
		{"additionalProperties", `{"properties": {"a": {}, "b": {}}, "additionalProperties": false}`, `{"a": 1}`, nil},
		{"additionalProperties", `{"properties": {"a": {}, "b": {}}, "additionalProperties": false}`, `{"a": 1, "y": 2, "x": 3}`,
			[]string{`: unknown fields x, y (allowed: a, b)`}},
		{"additionalProperties", `{"properties": {"a": {}}, "additionalProperties": false}`, `{"a b": 1, "\u001b[2J": 2, "": 3}`,
			[]string{`: unknown fields "", "\x1b[2J", "a b" (allowed: a)`}},
		{"additionalProperties", `{"properties": {"a": {}}, "additionalProperties": true}`, `{"y": 2}`, nil},
		{"additionalProperties", `{"properties": {"a": {}}, "additionalProperties": {"type": "string"}}`, `{"a": 1, "y": "2"}`, nil},
		{"additionalProperties", `{"properties": {"a": {}}, "additionalProperties": {"type": "string"}}`, `{"a": 1, "y": 2}`, []string{`/y: must be a string, got an integer`}},
		{"required", `{"required": ["path"]}`, `{"path": 1}`, nil},
		{"required", `{"required": ["path", "method"]}`, `{}`, []string{`: missing required fields "path", "method"`}},
		{"required", `{"required": ["path"]}`, `"x"`, nil},
		{"propertyNames", `{"propertyNames": ` + name + `}`, `{"web": 1}`, nil},
		{"propertyNames", `{"propertyNames": ` + name + `}`, `{"a.b": 1, "~/": 2}`,
			[]string{`/a.b: "a.b" does not match the pattern ^[a-z]+$`, `/~0~1: "~/" does not match the pattern ^[a-z]+$`}},
		{"minProperties", `{"minProperties": 1}`, `{}`, []string{`: must have at least 1 field, got 0`}},
		{"maxProperties", `{"maxProperties": 1}`, `{"b": 1, "a": 2}`, []string{`: must have at most 1 field, got 2: a, b`}},
		{"maxProperties", `{"maxProperties": 1}`, `{"b": 1}`, nil},
		{"oneOf", dur, `"30s"`, nil},
		{"oneOf", dur, `1.5`, nil},
		{"oneOf", dur, `"30 seconds"`, []string{`: "30 seconds" does not match the pattern ^[0-9]+s$`}},
		{"oneOf", dur, `-1`, []string{`: must be >= 0, got -1`}},
		{"oneOf", dur, `true`, []string{`: must be a string or a number, got a boolean`}},
		{"oneOf", route, `{"path": "/a", "method": "G T"}`, []string{`/method: "G T" does not match the pattern ^[A-Z]+$`}},
		{"oneOf", route, `{"method": "GET"}`, []string{`: missing required field "path"`}},
		{"oneOf", route, `"GET"`, []string{`: "GET" does not match the pattern ^[A-Z]+ /`}},
		{"oneOf", `{"oneOf": [{"type": "integer"}, {"type": "number"}]}`, `2`, []string{`: fits more than one of the allowed forms (0 and 1); it must fit exactly one`}},
		{"oneOf", `{"oneOf": [{"type": "integer"}, {"type": "number"}]}`, `2.5`, nil},
		{"oneOf fewest errors", `{"oneOf": [{"minLength": 9, "pattern": "^a"}, {"minLength": 3}]}`, `"b"`, []string{`: must be at least 3 characters long, got 1`}},
	} {
		t.Run(tc.keyword, func(t *testing.T) {
			s, err := Compile([]byte(tc.schema))
			if err != nil {
				t.Fatal(err)
			}
			inst := decode(t, tc.inst)
			var got []string
			for _, e := range s.Validate(inst, 0) {
				got = append(got, e.Pointer+": "+e.Message)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Errorf("%s against %s:\n got %q\nwant %q", tc.inst, tc.schema, got, tc.want)
			}
			if ref := reference(t, tc.schema, inst); ref != (len(got) == 0) {
				t.Errorf("%s against %s: valid %v here, %v for santhosh-tekuri/jsonschema", tc.inst, tc.schema, len(got) == 0, ref)
			}
		})
	}
}

const dur = `{"oneOf": [{"type": "string", "pattern": "^[0-9]+s$"}, {"type": "number", "minimum": 0}]}`
const route = `{"oneOf": [{"type": "string", "pattern": "^[A-Z]+ /"},
	{"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}, "method": {"type": "string", "pattern": "^[A-Z]+$"}}}]}`

// TestErrorFields: the keyword and, for patterns, the pattern come with
// each error, so a caller can word it its own way.
func TestErrorFields(t *testing.T) {
	s, err := Compile([]byte(`{"properties": {"a": {"pattern": "^x"}, "b": {"maximum": 1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := s.Validate(decode(t, `{"a": "y", "b": 2}`), 0)
	want := []Error{{Pointer: "/a", Keyword: "pattern", Pattern: "^x", Message: `"y" does not match the pattern ^x`},
		{Pointer: "/b", Keyword: "maximum", Message: "must be <= 1, got 2"}}
	if fmt.Sprint(got) != fmt.Sprint(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got[0].Error() != `/a: "y" does not match the pattern ^x` {
		t.Errorf("Error() = %q", got[0].Error())
	}
}

// TestLimit: no more errors than asked for, however many the value has.
func TestLimit(t *testing.T) {
	s, err := Compile([]byte(`{"items": {"type": "string"}}`))
	if err != nil {
		t.Fatal(err)
	}
	inst := decode(t, "["+strings.Repeat("1,", 9999)+"1]")
	for _, limit := range []int{1, 7, 20} {
		if n := len(s.Validate(inst, limit)); n != limit {
			t.Errorf("limit %d: %d errors", limit, n)
		}
	}
	if n := len(s.Validate(inst, 0)); n != 10000 {
		t.Errorf("no limit: %d errors, want 10000", n)
	}
}

// TestGoValues: Go numbers count as numbers; other Go types fail, never
// panic.
func TestGoValues(t *testing.T) {
	s, err := Compile([]byte(`{"properties": {"n": {"type": "integer", "maximum": 10}, "f": {"type": "number"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if errs := s.Validate(map[string]any{"n": int64(3), "f": float32(1.5)}, 0); len(errs) != 0 {
		t.Errorf("Go numbers: %v", errs)
	}
	errs := s.Validate(map[string]any{"n": uint8(11), "f": struct{}{}}, 0)
	if len(errs) != 2 || errs[0].Message != "is not a JSON value (a Go struct {})" || errs[1].Message != "must be <= 10, got 11" {
		t.Errorf("got %v", errs)
	}
}

// TestCompileRefuses: a keyword this package does not implement, or a
// malformed one, is an error naming the place, never silently ignored.
func TestCompileRefuses(t *testing.T) {
	for _, tc := range []struct{ schema, want string }{
		{`{"properties": {"a": {"format": "email"}}}`, `/properties/a/format: keyword "format" is not supported`},
		{`{"$ref": "#/definitions/x"}`, `/$ref: keyword "$ref" is not supported`},
		{`{"items": {"const": 1}}`, `/items/const: keyword "const" is not supported`},
		{`{"oneOf": [{"if": {}}]}`, `/oneOf/0/if: keyword "if" is not supported`},
		{`{"additionalProperties": {"patternProperties": {}}}`, `/additionalProperties/patternProperties`},
		{`{"propertyNames": {"exclusiveMinimum": 1}}`, `exclusiveMinimum`},
		{`{"anyOf": [{}]}`, `"anyOf" is not supported`},
		{`{"items": [{}]}`, `items as a list`},
		{`{"items": true}`, `/items: a schema must be an object, not a boolean`},
		{`{"type": "text"}`, `unknown type "text"`},
		{`{"type": []}`, `at least one type`},
		{`{"pattern": "(["}`, `/pattern: pattern "([" is not a regular expression`},
		{`{"minLength": -1}`, `/minLength: must be a non-negative integer`},
		{`{"maxItems": 1.5}`, `/maxItems: must be a non-negative integer`},
		{`{"minimum": "1"}`, `/minimum: must be a number`},
		{`{"required": ["a", "a"]}`, `"a" is listed twice`},
		{`{"enum": []}`, `enum must be a list of at least one value`},
		{`{"oneOf": []}`, `/oneOf: must be a list of at least one schema`},
		{`{"$schema": "https://json-schema.org/draft/2020-12/schema"}`, `only draft-07`},
		{`[]`, `the schema's root: a schema must be an object`},
		{`{} {}`, `data after its end`},
		{`{`, `not JSON`},
	} {
		_, err := Compile([]byte(tc.schema))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%s) = %v, want an error with %q", tc.schema, err, tc.want)
		}
	}
	if _, err := Compile([]byte(`{"$schema": "http://json-schema.org/draft-07/schema#", "$id": "x", "title": "t", "description": "d",
		"$comment": "c", "default": 1, "examples": [1], "properties": {"a": {"description": "d"}}}`)); err != nil {
		t.Errorf("annotations: %v", err)
	}
}

// TestKeywordsList: every keyword Keywords names compiles.
func TestKeywordsList(t *testing.T) {
	for _, k := range Keywords() {
		val := map[string]string{"type": `"string"`, "enum": `[1]`, "pattern": `"a"`, "items": `{}`, "properties": `{}`,
			"additionalProperties": `false`, "required": `[]`, "propertyNames": `{}`, "oneOf": `[{}]`}[k]
		if val == "" {
			val = "1"
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, `{%q: %s}`, k, val)
		if _, err := Compile(b.Bytes()); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
}
