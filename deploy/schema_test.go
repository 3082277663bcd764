package deploy

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// TestSchemaCompiles: the validator implements every keyword the schema
// uses. A keyword it does not know fails here (and every deploy), never
// silently: implement it in internal/schemalite first.
func TestSchemaCompiles(t *testing.T) {
	if _, err := compiledSchema(); err != nil {
		t.Fatal(err)
	}
}

// TestPatternHints: every pattern of the schema has its words in
// patternHints, and patternHints names no pattern the schema lost.
func TestPatternHints(t *testing.T) {
	var schema any
	if err := json.Unmarshal(SchemaJSON, &schema); err != nil {
		t.Fatal(err)
	}
	patterns := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if p, ok := x["pattern"].(string); ok {
				patterns[p] = true
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(schema)
	got, want := slices.Sorted(maps.Keys(patternHints)), slices.Sorted(maps.Keys(patterns))
	if !slices.Equal(got, want) {
		t.Errorf("patternHints has %q,\nthe schema's patterns are %q", got, want)
	}
}
