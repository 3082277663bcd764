package schemalite

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is one way a value fails a schema.
type Error struct {
	// Pointer is where the failing value is in the document, a JSON
	// pointer (RFC 6901): "" is the whole document, "/apps/web/http/0" an
	// item of a list.
	Pointer string
	// Keyword is the keyword that failed: "type", "enum", "pattern",
	// "minimum", "additionalProperties", "oneOf", …
	Keyword string
	// Pattern is the regular expression when Keyword is "pattern", so that
	// a caller can say what the pattern means in its own words.
	Pattern string
	// Message says what is wrong and what is allowed, e.g. "must be an
	// integer, got a string".
	Message string
}

// Error returns the pointer and the message.
func (e Error) Error() string {
	if e.Pointer == "" {
		return e.Message
	}
	return e.Pointer + ": " + e.Message
}

// Validate checks v, a value as encoding/json decodes it (nil, bool,
// string, float64 or json.Number, []any, map[string]any; Go integer types
// are taken as numbers too), and returns at most limit errors (all when
// limit <= 0), none when v is valid. Properties are visited in sorted
// order, so the same value gives the same errors. Values of other Go types
// fail with a "type" error.
func (s *Schema) Validate(v any, limit int) []Error {
	vd := &validator{limit: limit}
	vd.check(s, v, "")
	return vd.errs
}

// validator collects the errors of one validation.
type validator struct {
	errs  []Error
	limit int
}

// full reports whether no more errors are wanted.
func (vd *validator) full() bool { return vd.limit > 0 && len(vd.errs) >= vd.limit }

// add records an error at ptr.
func (vd *validator) add(ptr, keyword, format string, args ...any) {
	if !vd.full() { // no formatting past the limit
		vd.push(Error{Pointer: ptr, Keyword: keyword, Message: fmt.Sprintf(format, args...)})
	}
}

// push records e unless the validator is full.
func (vd *validator) push(e Error) {
	if !vd.full() {
		vd.errs = append(vd.errs, e)
	}
}

// check validates v, found at ptr, against s.
func (vd *validator) check(s *Schema, v any, ptr string) {
	t := typeOf(v)
	if t == "" {
		vd.add(ptr, "type", "is not a JSON value (a Go %T)", v)
		return
	}
	if len(s.types) > 0 && !typeAllowed(s.types, t) {
		vd.add(ptr, "type", "must be %s, got %s", typeNames(s.types), article(t))
		return // the other keywords would only repeat it
	}
	if s.enum != nil && !slices.ContainsFunc(s.enum, func(e any) bool { return equal(e, v) }) {
		vd.add(ptr, "enum", "must be one of: %s; got %s", enumText(s.enum), show(v))
	}
	switch x := v.(type) {
	case string:
		vd.checkString(s, x, ptr)
	case []any:
		vd.checkArray(s, x, ptr)
	case map[string]any:
		vd.checkObject(s, x, ptr)
	case nil, bool:
	default:
		vd.checkNumber(s, v, ptr)
	}
	if len(s.oneOf) > 0 {
		vd.checkOneOf(s, v, ptr)
	}
}

func (vd *validator) checkString(s *Schema, v, ptr string) {
	if s.minLength >= 0 || s.maxLength >= 0 {
		n := utf8.RuneCountInString(v)
		if s.minLength >= 0 && n < s.minLength {
			if s.minLength == 1 {
				vd.add(ptr, "minLength", "must not be empty")
			} else {
				vd.add(ptr, "minLength", "must be at least %s long, got %d", plural(s.minLength, "character"), n)
			}
		}
		if s.maxLength >= 0 && n > s.maxLength {
			vd.add(ptr, "maxLength", "must be at most %s long, got %d", plural(s.maxLength, "character"), n)
		}
	}
	if s.pattern != nil && !s.pattern.MatchString(v) {
		vd.push(Error{Pointer: ptr, Keyword: "pattern", Pattern: s.pattern.String(),
			Message: fmt.Sprintf("%s does not match the pattern %s", show(v), s.pattern)})
	}
}

func (vd *validator) checkNumber(s *Schema, v any, ptr string) {
	f := floatOf(v)
	if s.minimum != nil && f < *s.minimum {
		vd.add(ptr, "minimum", "must be >= %s, got %s", num(*s.minimum), show(v))
	}
	if s.maximum != nil && f > *s.maximum {
		vd.add(ptr, "maximum", "must be <= %s, got %s", num(*s.maximum), show(v))
	}
}

func (vd *validator) checkArray(s *Schema, v []any, ptr string) {
	if s.minItems >= 0 && len(v) < s.minItems {
		vd.add(ptr, "minItems", "must have at least %s, got %d", plural(s.minItems, "item"), len(v))
	}
	if s.maxItems >= 0 && len(v) > s.maxItems {
		vd.add(ptr, "maxItems", "must have at most %s, got %d", plural(s.maxItems, "item"), len(v))
	}
	if s.items == nil {
		return
	}
	for i, e := range v {
		if vd.full() {
			return
		}
		vd.check(s.items, e, ptr+"/"+strconv.Itoa(i))
	}
}

func (vd *validator) checkObject(s *Schema, v map[string]any, ptr string) {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if s.minProps >= 0 && len(v) < s.minProps {
		vd.add(ptr, "minProperties", "must have at least %s, got %d", plural(s.minProps, "field"), len(v))
	}
	if s.maxProps >= 0 && len(v) > s.maxProps {
		vd.add(ptr, "maxProperties", "must have at most %s, got %d: %s", plural(s.maxProps, "field"), len(v), list(fieldNames(keys), 10))
	}
	var missing []string
	for _, r := range s.required {
		if _, ok := v[r]; !ok {
			missing = append(missing, strconv.Quote(r))
		}
	}
	if len(missing) > 0 {
		vd.add(ptr, "required", "missing required %s %s", pluralWord(len(missing), "field"), strings.Join(missing, ", "))
	}
	var unknown []string
	for _, k := range keys {
		if vd.full() {
			return
		}
		if s.propertyNames != nil {
			vd.check(s.propertyNames, k, ptr+"/"+escape(k))
		}
		switch ps, ok := s.properties[k]; {
		case ok:
			vd.check(ps, v[k], ptr+"/"+escape(k))
		case s.closed:
			unknown = append(unknown, k)
		case s.additional != nil:
			vd.check(s.additional, v[k], ptr+"/"+escape(k))
		}
	}
	if len(unknown) > 0 {
		vd.add(ptr, "additionalProperties", "unknown %s %s (allowed: %s)",
			pluralWord(len(unknown), "field"), list(fieldNames(unknown), 10), list(fieldNames(s.names), 40))
	}
}

// checkOneOf requires v to match exactly one alternative. When it matches
// none, it reports the alternative that fits best: the first whose type
// takes v (with the fewest errors), or, when no type does, what the types
// are.
func (vd *validator) checkOneOf(s *Schema, v any, ptr string) {
	var matched []int
	var best []Error
	bestFits := false
	for i, alt := range s.oneOf {
		sub := &validator{limit: vd.limit}
		sub.check(alt, v, ptr)
		if len(sub.errs) == 0 {
			matched = append(matched, i)
			continue
		}
		fits := len(alt.types) == 0 || typeAllowed(alt.types, typeOf(v))
		if fits && (!bestFits || len(sub.errs) < len(best)) {
			best, bestFits = sub.errs, true
		}
	}
	switch {
	case len(matched) > 1:
		vd.add(ptr, "oneOf", "fits more than one of the allowed forms (%d and %d); it must fit exactly one", matched[0], matched[1])
	case len(matched) == 1:
	case bestFits:
		for _, e := range best {
			vd.push(e)
		}
	default:
		var types []string
		for _, alt := range s.oneOf {
			for _, t := range alt.types {
				if !slices.Contains(types, t) {
					types = append(types, t)
				}
			}
		}
		vd.add(ptr, "oneOf", "must be %s, got %s", typeNames(types), article(typeOf(v)))
	}
}
