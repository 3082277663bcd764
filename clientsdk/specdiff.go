package clientsdk

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"
)

// SpecChange is one field that differs between two versions of a spec.
type SpecChange struct {
	// Field is the spec's field as JSON names it, nested with dots:
	// "instances", "env.DB_URL", "lambda.timeout", "artifact.sha256".
	Field string `json:"field"`
	// Old and New are the values as JSON writes them ("" when absent).
	// Values of env are never shown: both say "(hidden)" when set.
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
}

// String writes the change for people: "instances: 1 → 3", "+env.TOKEN",
// "-constraints.zone".
func (c SpecChange) String() string {
	switch {
	case c.Old == "":
		return "+" + c.Field + valueSuffix(c.New)
	case c.New == "":
		return "-" + c.Field
	case c.Old == hiddenValue:
		return c.Field + " changed"
	}
	return c.Field + ": " + c.Old + " → " + c.New
}

func valueSuffix(v string) string {
	if v == hiddenValue {
		return ""
	}
	return "=" + v
}

const hiddenValue = "(hidden)"

// DiffSpecs lists what a user changed between two specs, field by field,
// sorted by field: both are compared after WithDefaults, and what the
// server sets on its own (times, who pushed, versions, the token nonce,
// a restart's time, kill's stop) is left out. An empty list means the
// same app.
func DiffSpecs(old, new AppSpec) []SpecChange {
	a, b := flatSpec(old), flatSpec(new)
	var out []SpecChange
	for _, k := range slices.Sorted(maps.Keys(mergeKeys(a, b))) {
		va, vb := a[k], b[k]
		if va == vb {
			continue
		}
		if strings.HasPrefix(k, "env.") {
			va, vb = hideValue(va), hideValue(vb)
		}
		out = append(out, SpecChange{Field: k, Old: va, New: vb})
	}
	return out
}

func hideValue(v string) string {
	if v == "" {
		return ""
	}
	return hiddenValue
}

func mergeKeys(a, b map[string]string) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

// flatSpec writes the user's part of s as field → JSON value, objects
// flattened with dots and lists kept whole.
func flatSpec(s AppSpec) map[string]string {
	s = s.WithDefaults()
	s.PushedAt, s.PushedBy, s.TokenNonce = time.Time{}, "", ""
	s.Version, s.Revision, s.RollbackOf = 0, 0, 0
	s.RestartedAt, s.Stopped = time.Time{}, false
	if s.Artifact != nil {
		a := *s.Artifact // a copy: the caller's spec is left as it is
		a.FileName = ""  // the same bytes under another name run the same
		s.Artifact = &a
	}
	b, _ := json.Marshal(s)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	out := map[string]string{}
	flatten("", m, out)
	delete(out, "artifact.object") // named by the digest: artifact.sha256 says it
	return out
}

func flatten(prefix string, m map[string]any, out map[string]string) {
	for k, v := range m {
		key := prefix + k
		if sub, ok := v.(map[string]any); ok {
			flatten(key+".", sub, out)
			continue
		}
		b, _ := json.Marshal(v)
		out[key] = string(b)
	}
}
