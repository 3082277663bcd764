package deploy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// MaxFileBytes bounds a deploy file.
const MaxFileBytes = 1 << 20

// MaxApps bounds the apps and functions of one deploy file.
const MaxApps = 1000

// maxErrors bounds the problems reported at once.
const maxErrors = 20

// Problem is one thing wrong in a deploy file, with where it is.
type Problem struct {
	File  string `json:"file"`
	Line  int    `json:"line,omitempty"`
	Field string `json:"field,omitempty"`
	Msg   string `json:"message"`
}

func (p Problem) String() string {
	s := p.File
	if p.Line > 0 {
		s += ":" + strconv.Itoa(p.Line)
	}
	if p.Field != "" {
		s += ": " + quoteUnprintable(p.Field)
	}
	return s + ": " + quoteUnprintable(p.Msg)
}

// quoteUnprintable quotes s when it holds a control or other unprintable
// character (a key written with a newline or a terminal escape would
// otherwise print lines that look like dartup's own).
func quoteUnprintable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// FileError lists what is wrong in a deploy file; nothing was changed.
type FileError struct{ Problems []Problem }

func (e *FileError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// doc is a parsed deploy file: its nodes, with ${env:…} resolved, and where
// each field is.
type doc struct {
	name     string
	root     *yaml.Node
	lines    map[string]int
	problems []Problem
	// lenient lists unknown keys in ignored instead of refusing them
	// (serverless.yml holds much that dartup has no use for).
	lenient bool
	ignored []string
	getenv  func(string) (string, bool)
}

// add records a problem at field (its line when known).
func (d *doc) add(field, format string, args ...any) {
	if len(d.problems) >= maxErrors {
		return
	}
	d.problems = append(d.problems, Problem{File: d.name, Line: d.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// line returns field's line, or its nearest known parent's.
func (d *doc) line(field string) int {
	for f := field; f != ""; {
		if l, ok := d.lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

func (d *doc) err() error {
	if len(d.problems) == 0 {
		return nil
	}
	return &FileError{Problems: d.problems}
}

// parse reads data as YAML into a node tree, resolves ${env:VAR} with
// getenv, and checks every key against the Go type of v (unknown keys are
// problems), recording each field's line. Problems go into the doc.
func parse(name string, data []byte, v any, getenv func(string) (string, bool)) *doc {
	return parseWith(name, data, v, getenv, false)
}

// parseWith is parse, listing unknown keys as ignored when lenient.
func parseWith(name string, data []byte, v any, getenv func(string) (string, bool), lenient bool) *doc {
	d := &doc{name: name, lines: map[string]int{}, lenient: lenient, getenv: getenv}
	if len(data) > MaxFileBytes {
		d.add("", "the file is over %d bytes, the most a deploy file may hold", MaxFileBytes)
		return d
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		d.problems = append(d.problems, yamlProblems(name, err)...)
		return d
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		d.add("", "the file is empty")
		return d
	}
	d.root = root.Content[0]
	d.checkKeys(d.root, reflect.TypeOf(v).Elem(), "")
	if len(d.problems) == 0 && !lenient {
		d.checkSchema()
	}
	if len(d.problems) > 0 {
		return d
	}
	if err := d.root.Decode(v); err != nil {
		d.problems = append(d.problems, yamlProblems(name, err)...)
	}
	return d
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblems turns the YAML library's errors into problems with lines.
func yamlProblems(name string, err error) []Problem {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []Problem
	for _, m := range msgs {
		p := Problem{File: name, Msg: m}
		if s := lineRE.FindStringSubmatch(m); s != nil {
			p.Line, _ = strconv.Atoi(s[1])
			p.Msg = s[2]
		}
		p.Msg = strings.ReplaceAll(p.Msg, "!!", "")
		out = append(out, p)
	}
	return out
}

var envRE = regexp.MustCompile(`\$\{([^}]*)\}`)
var envRefRE = regexp.MustCompile(`^env:([A-Za-z_][A-Za-z0-9_]*)\s*(?:,\s*(.*))?$`)

// resolveScalar replaces ${env:VAR} and ${env:VAR, default} in scalar n,
// a value for a field of kind k: the result is text for a string field
// (whatever it looks like) and typed by its look otherwise.
func (d *doc) resolveScalar(n *yaml.Node, k reflect.Kind) {
	if k == reflect.String && n.Tag != "!!str" {
		if n.Tag == "!!null" {
			n.Value = "" // `handler:` or `handler: ~` is empty text
		}
		n.Tag, n.Style = "!!str", 0 // `PORT: 8080` in env is the text 8080
	}
	if !strings.Contains(n.Value, "${") {
		return
	}
	getenv := d.getenv
	n.Value = envRE.ReplaceAllStringFunc(n.Value, func(ref string) string {
		m := envRefRE.FindStringSubmatch(strings.TrimSpace(ref[2 : len(ref)-1]))
		if m == nil {
			d.problems = append(d.problems, Problem{File: d.name, Line: n.Line, Msg: fmt.Sprintf("%s: only ${env:VAR} and ${env:VAR, default} references are understood", ref)})
			return ref
		}
		if v, ok := getenv(m[1]); ok {
			return v
		}
		if m[2] != "" || strings.Contains(ref, ",") {
			return strings.Trim(strings.TrimSpace(m[2]), `'"`)
		}
		d.problems = append(d.problems, Problem{File: d.name, Line: n.Line, Msg: fmt.Sprintf("%s: the environment variable %s is not set (set it, or give a default: ${env:%s, value})", ref, m[1], m[1])})
		return ref
	})
	if k != reflect.String {
		n.Tag, n.Style = "", 0 // typed by what it now says: ${env:N} for a number
	}
}

var durationType = reflect.TypeOf(Duration(0))
var httpEventType = reflect.TypeOf(HTTPEvent{})

// checkKeys walks n along Go type t, recording lines and refusing keys
// that t does not have.
func (d *doc) checkKeys(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		if _, ok := d.lines[path]; !ok {
			d.lines[path] = n.Line
		}
	}
	if n.Kind == yaml.ScalarNode {
		kind := t.Kind()
		if t == durationType || t == httpEventType {
			kind = reflect.Invalid // parsed by their own UnmarshalYAML
		}
		d.resolveScalar(n, kind)
	}
	if n.Kind == yaml.MappingNode {
		d.textKeys(n, path)
	}
	switch {
	case t == durationType || t == httpEventType && n.Kind == yaml.ScalarNode:
		return
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			field := join(path, k.Value)
			d.lines[field] = k.Line
			if !ok && d.lenient {
				d.ignored = append(d.ignored, field)
				continue
			}
			if !ok {
				d.add(field, "unknown key %q%s", k.Value, suggest(k.Value, fields))
				continue
			}
			d.checkKeys(v, ft, field)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			field := join(path, k.Value)
			d.lines[field] = k.Line
			d.checkKeys(n.Content[i+1], t.Elem(), field)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			d.checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

// textKeys makes every key of mapping n text (`1:` is the name "1", `~:`
// the name "~", which name checks then refuse), and refuses references in
// keys.
func (d *doc) textKeys(n *yaml.Node, path string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			d.problems = append(d.problems, Problem{File: d.name, Line: k.Line, Field: path, Msg: "a key is a name, not a list or a mapping"})
			continue
		}
		k.Tag = "!!str"
		if strings.Contains(k.Value, "${") {
			d.problems = append(d.problems, Problem{File: d.name, Line: k.Line, Field: join(path, k.Value), Msg: "${…} references work in values, not in keys"})
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the YAML keys of struct t (inline structs included) to
// their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name != "" && name != "-" {
			out[name] = f.Type
		}
	}
	return out
}

// suggest returns " (did you mean X?)" for the known key nearest to key,
// or a list of the keys when none is near.
func suggest(key string, fields map[string]reflect.Type) string {
	best, dist := "", 3
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
		if dd := editDistance(strings.ToLower(key), k); dd < dist {
			best, dist = k, dd
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	slices.Sort(keys)
	return "; known keys: " + strings.Join(keys, ", ")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// readFile reads a deploy file, bounded.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a folder; give the deploy file (dartup.yaml) with -f", path)
	}
	return io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
}
