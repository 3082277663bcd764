package schemalite

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// typeOf returns v's JSON type ("integer" for a whole number), or "" when
// v is not a JSON value.
func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "integer"
	case float32, float64:
		if f := floatOf(x); f == math.Trunc(f) && !math.IsInf(f, 0) {
			return "integer"
		}
		return "number"
	case json.Number:
		if strings.Trim(x.String(), "-0123456789") == "" {
			return "integer" // however long
		}
		if f, err := x.Float64(); err == nil && f == math.Trunc(f) {
			return "integer"
		}
		return "number"
	}
	return ""
}

// typeAllowed reports whether a value of JSON type t passes "type": types.
func typeAllowed(types []string, t string) bool {
	for _, a := range types {
		if a == t || a == "number" && t == "integer" {
			return true
		}
	}
	return false
}

// floatOf returns a number as a float64 (json.Number beyond its range as
// an infinity), NaN for a value that is not a number.
func floatOf(v any) float64 {
	if n, ok := v.(json.Number); ok {
		f, _ := strconv.ParseFloat(n.String(), 64)
		return f
	}
	switch rv := reflect.ValueOf(v); {
	case !rv.IsValid():
	case rv.CanInt():
		return float64(rv.Int())
	case rv.CanUint():
		return float64(rv.Uint())
	case rv.CanFloat():
		return rv.Float()
	}
	return math.NaN()
}

// equal compares two JSON values, numbers by value.
func equal(a, b any) bool {
	ta, tb := typeOf(a), typeOf(b)
	if isNumber(ta) && isNumber(tb) {
		return floatOf(a) == floatOf(b)
	}
	if ta != tb {
		return false
	}
	switch x := a.(type) {
	case []any:
		y := b.([]any)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y := b.(map[string]any)
		if len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			if yv, ok := y[k]; !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return a == b
}

func isNumber(t string) bool { return t == "integer" || t == "number" }

// article names a JSON type for a person: "an integer", "null".
func article(t string) string {
	switch t {
	case "null":
		return "null"
	case "integer", "array", "object":
		return "an " + t
	}
	return "a " + t
}

// typeNames names the allowed types: "a string", "an object or null".
func typeNames(types []string) string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = article(t)
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// maxShown bounds the characters of a value quoted in a message.
const maxShown = 64

// show gives a value for a message: a string quoted (long ones cut), a
// number, true, false or null as written, a list or an object by its type.
func show(v any) string {
	switch x := v.(type) {
	case string:
		n := 0
		for i := range x {
			if n == maxShown {
				return strconv.Quote(x[:i]) + "…"
			}
			n++
		}
		return strconv.Quote(x)
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		if len(x) > maxShown {
			return string(x[:maxShown]) + "…"
		}
		return x.String()
	case []any, map[string]any:
		return article(typeOf(v))
	}
	return num(floatOf(v))
}

// num writes a number the short way: 1024, 0.5, 1e+21.
func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// enumText lists the allowed values: strings as they are, others as JSON.
func enumText(enum []any) string {
	parts := make([]string, len(enum))
	for i, e := range enum {
		if s, ok := e.(string); ok {
			parts[i] = s
			continue
		}
		b, _ := json.Marshal(e)
		parts[i] = string(b)
	}
	return strings.Join(parts, ", ")
}

// plural writes "1 item", "3 items".
func plural(n int, word string) string { return strconv.Itoa(n) + " " + pluralWord(n, word) }

func pluralWord(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// list joins at most max items, saying how many more there are.
func list(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + ", … (" + strconv.Itoa(len(items)-max) + " more)"
}

// fieldNames writes names for a message: plain ones (letters, digits,
// '_', '-', '.', '/') as they are, others quoted, long ones cut.
func fieldNames(names []string) []string {
	out := make([]string, len(names))
	for i, s := range names {
		out[i] = s
		if s == "" || len(s) > maxShown || strings.TrimFunc(s, isPlain) != "" {
			out[i] = show(s)
		}
	}
	return out
}

func isPlain(r rune) bool {
	return r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./", r))
}
