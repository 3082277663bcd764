package schemalite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Schema is a compiled schema (or one of its subschemas). It is immutable
// and safe for concurrent use.
type Schema struct {
	types   []string // "type": allowed JSON types; none: any
	enum    []any    // "enum"
	pattern *regexp.Regexp

	minLength, maxLength int // -1: absent
	minimum, maximum     *float64

	items              *Schema
	minItems, maxItems int

	properties    map[string]*Schema
	names         []string // the keys of properties, sorted
	additional    *Schema  // "additionalProperties" as a schema
	closed        bool     // "additionalProperties": false
	required      []string
	propertyNames *Schema
	minProps      int
	maxProps      int

	oneOf []*Schema
}

// draft07 is the only "$schema" Compile accepts (with or without its "#").
const draft07 = "http://json-schema.org/draft-07/schema"

// jsonTypes are the names "type" may use.
var jsonTypes = []string{"array", "boolean", "integer", "null", "number", "object", "string"}

// Keywords lists the keywords Compile implements, sorted; annotations
// (title, description, …) are not among them.
func Keywords() []string {
	return []string{"additionalProperties", "enum", "items", "maxItems", "maxLength", "maxProperties", "maximum",
		"minItems", "minLength", "minProperties", "minimum", "oneOf", "pattern", "properties", "propertyNames", "required", "type"}
}

// isAnnotation reports whether key is a keyword that does not change what
// validates.
func isAnnotation(key string) bool {
	switch key {
	case "$schema", "$id", "$comment", "title", "description", "default", "examples":
		return true
	}
	return false
}

// Compile parses a JSON Schema document. It returns an error naming the
// place (a JSON pointer into the schema) when the document is not JSON, a
// keyword's value is malformed (a bad regular expression, a negative
// length, …), or the schema uses a keyword this package does not implement.
func Compile(data []byte) (*Schema, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("schemalite: the schema is not JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("schemalite: the schema has data after its end")
	}
	if m, ok := doc.(map[string]any); ok {
		if v, ok := m["$schema"]; ok && (v != draft07 && v != draft07+"#") {
			return nil, fmt.Errorf("schemalite: $schema %v is not supported: only draft-07 (%s#)", v, draft07)
		}
	}
	return compile(doc, "")
}

// compile compiles the subschema v found at pointer at.
func compile(v any, at string) (*Schema, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schemalite: %s: a schema must be an object, not %s", place(at), article(typeOf(v)))
	}
	s := &Schema{minLength: -1, maxLength: -1, minItems: -1, maxItems: -1, minProps: -1, maxProps: -1}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same document gives the same first error
	for _, k := range keys {
		if isAnnotation(k) {
			continue
		}
		if err := s.keyword(k, m[k], at+"/"+escape(k)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// keyword compiles one keyword of s.
func (s *Schema) keyword(key string, v any, at string) (err error) {
	switch key {
	case "type":
		s.types, err = typeList(v, at)
	case "enum":
		s.enum, err = enumList(v, at)
	case "pattern":
		s.pattern, err = regexpOf(v, at)
	case "minLength":
		s.minLength, err = count(v, at)
	case "maxLength":
		s.maxLength, err = count(v, at)
	case "minimum":
		s.minimum, err = number(v, at)
	case "maximum":
		s.maximum, err = number(v, at)
	case "items":
		if _, ok := v.([]any); ok {
			return fmt.Errorf("schemalite: %s: items as a list (one schema per position) is not supported; give one schema for every item", place(at))
		}
		s.items, err = compile(v, at)
	case "minItems":
		s.minItems, err = count(v, at)
	case "maxItems":
		s.maxItems, err = count(v, at)
	case "properties":
		s.properties, s.names, err = propertyMap(v, at)
	case "additionalProperties":
		if b, ok := v.(bool); ok {
			s.closed = !b
			return nil
		}
		s.additional, err = compile(v, at)
	case "required":
		s.required, err = stringList(v, at)
	case "propertyNames":
		s.propertyNames, err = compile(v, at)
	case "minProperties":
		s.minProps, err = count(v, at)
	case "maxProperties":
		s.maxProps, err = count(v, at)
	case "oneOf":
		s.oneOf, err = schemaList(v, at)
	default:
		return fmt.Errorf("schemalite: %s: keyword %q is not supported (supported: %s); implement it in internal/schemalite before the schema uses it",
			place(at), key, strings.Join(Keywords(), ", "))
	}
	return err
}

// place names a schema pointer in an error.
func place(at string) string {
	if at == "" {
		return "the schema's root"
	}
	return at
}

func typeList(v any, at string) ([]string, error) {
	if s, ok := v.(string); ok {
		v = []any{s}
	}
	names, err := stringList(v, at)
	if err == nil && len(names) == 0 {
		err = fmt.Errorf("schemalite: %s: type must name at least one type", at)
	}
	for _, n := range names {
		if err == nil && !slices.Contains(jsonTypes, n) {
			err = fmt.Errorf("schemalite: %s: unknown type %q (known: %s)", at, n, strings.Join(jsonTypes, ", "))
		}
	}
	return names, err
}

func enumList(v any, at string) ([]any, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("schemalite: %s: enum must be a list of at least one value", at)
	}
	return list, nil
}

func regexpOf(v any, at string) (*regexp.Regexp, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("schemalite: %s: pattern must be a string, not %s", at, article(typeOf(v)))
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("schemalite: %s: pattern %q is not a regular expression Go understands: %w", at, s, err)
	}
	return re, nil
}

// count reads a non-negative integer (a length or a number of items).
func count(v any, at string) (int, error) {
	n, ok := v.(json.Number)
	if ok {
		if i, err := strconv.ParseInt(n.String(), 10, 32); err == nil && i >= 0 {
			return int(i), nil
		}
	}
	return 0, fmt.Errorf("schemalite: %s: must be a non-negative integer, not %v", at, v)
}

func number(v any, at string) (*float64, error) {
	n, ok := v.(json.Number)
	if ok {
		if f, err := n.Float64(); err == nil && !math.IsInf(f, 0) {
			return &f, nil
		}
	}
	return nil, fmt.Errorf("schemalite: %s: must be a number, not %v", at, v)
}

func stringList(v any, at string) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("schemalite: %s: must be a list of strings, not %s", at, article(typeOf(v)))
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("schemalite: %s: must be a list of strings; %v is %s", at, e, article(typeOf(e)))
		}
		if slices.Contains(out, s) {
			return nil, fmt.Errorf("schemalite: %s: %q is listed twice", at, s)
		}
		out = append(out, s)
	}
	return out, nil
}

func propertyMap(v any, at string) (map[string]*Schema, []string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("schemalite: %s: properties must be an object, not %s", at, article(typeOf(v)))
	}
	out := make(map[string]*Schema, len(m))
	names := make([]string, 0, len(m))
	for k, sv := range m {
		s, err := compile(sv, at+"/"+escape(k))
		if err != nil {
			return nil, nil, err
		}
		out[k] = s
		names = append(names, k)
	}
	slices.Sort(names)
	return out, names, nil
}

func schemaList(v any, at string) ([]*Schema, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("schemalite: %s: must be a list of at least one schema", at)
	}
	out := make([]*Schema, len(list))
	for i, sv := range list {
		s, err := compile(sv, at+"/"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// escape escapes one JSON pointer token (RFC 6901).
func escape(tok string) string {
	if !strings.ContainsAny(tok, "~/") {
		return tok
	}
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}
