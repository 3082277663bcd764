package natsctx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// settings is the file's layout as the nats CLI writes it (jsm.go
// natscontext's settings; every field is written, unset ones empty).
type settings struct {
	URL         string   `json:"url"`
	User        string   `json:"user"`
	Password    string   `json:"password"`
	Token       string   `json:"token"`
	Creds       string   `json:"creds"`
	NKey        string   `json:"nkey"`
	Cert        string   `json:"cert"`
	Key         string   `json:"key"`
	CA          string   `json:"ca"`
	InboxPrefix string   `json:"inbox_prefix"`
	TLSFirst    bool     `json:"tls_first"`
	NSC         string   `json:"nsc"`
	SocksProxy  string   `json:"socks_proxy"`
	UserJWT     string   `json:"user_jwt"`
	JSDomain    string   `json:"jetstream_domain"`
	JSAPIPrefix string   `json:"jetstream_api_prefix"`
	WinStore    string   `json:"windows_cert_store"`
	WinMatchBy  string   `json:"windows_cert_match_by"`
	WinMatch    string   `json:"windows_cert_match"`
	WinCAsMatch []string `json:"windows_ca_certs_match"`
	// These change nothing about how dartup connects (labels, the CLI's
	// colours, the prefix of JetStream advisories, which dartup reads none
	// of): known, so that setting them is no error, and then ignored.
	Name          string `json:"name"`
	Description   string `json:"description"`
	ColorScheme   string `json:"color_scheme"`
	JSEventPrefix string `json:"jetstream_event_prefix"`
}

// unsupported lists, for each field dartup cannot honour, what to do instead.
func unsupported(s *settings) []problem {
	winStore := "dartup does not read the Windows certificate store; export the certificate and its key to PEM files and set cert and key (or pass --tls-cert and --tls-key)"
	all := []problem{
		{"nsc", s.NSC != "", "dartup does not run nsc; write the user's credentials to a file (nsc generate creds -a ACCOUNT -n USER > user.creds) and save the context with --creds user.creds instead of --nsc"},
		{"socks_proxy", s.SocksProxy != "", "dartup cannot dial through a SOCKS proxy; reach the server directly or through a tunnel (ssh -L 4222:SERVER:4222 HOST, then --server nats://127.0.0.1:4222)"},
		{"user_jwt", s.UserJWT != "", "dartup takes a user JWT only from a creds file; save the context with --creds FILE"},
		{"jetstream_domain", s.JSDomain != "", "dartup uses its own server's JetStream and no domain; use a context without it"},
		{"jetstream_api_prefix", s.JSAPIPrefix != "", "dartup uses its own server's JetStream API ($JS.API); use a context without it"},
		{"windows_cert_store", s.WinStore != "", winStore},
		{"windows_cert_match_by", s.WinMatchBy != "", winStore},
		{"windows_cert_match", s.WinMatch != "", winStore},
		{"windows_ca_certs_match", len(s.WinCAsMatch) > 0, "dartup does not read the Windows certificate store; export the CA to a PEM file and set ca (or pass --tls-ca)"},
	}
	return slices.DeleteFunc(all, func(p problem) bool { return !p.set })
}

// problem is a field that is set and what is wrong with it.
type problem struct {
	field string
	set   bool
	why   string
}

func (p problem) String() string { return fmt.Sprintf("field %q is set: %s", p.field, p.why) }

// maxProblems bounds the problems one error lists (a hostile file may set
// thousands of unknown fields).
const maxProblems = 8

// decode parses a context file and checks it, expanding its paths.
func decode(data []byte) (*Context, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("the file is empty; save the context again with `nats context save NAME …`")
	}
	var s settings
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, jsonError(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return nil, errors.New("the file is not a JSON object")
	}
	var msgs []string
	for _, p := range append(unknownFields(raw), unsupported(&s)...) {
		msgs = append(msgs, p.String())
	}
	msgs = append(msgs, conflicts(&s)...)
	if len(msgs) > maxProblems {
		msgs = append(msgs[:maxProblems], fmt.Sprintf("and %d more", len(msgs)-maxProblems))
	}
	if len(msgs) > 0 {
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	return expand(&s)
}

// jsonError says where a file is not JSON or which field has the wrong type.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("not valid JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Errorf("field %q holds a JSON %s where a %s belongs", typ.Field, typ.Value, typ.Type)
	case errors.As(err, &typ):
		return fmt.Errorf("the file holds a JSON %s, not an object", typ.Value)
	}
	return fmt.Errorf("not valid JSON: %w", err)
}

// unknownFields are fields the file sets that dartup does not know, perhaps
// written by a newer nats CLI: refused, since one may be a credential or a
// way to the server. Empty values (as the CLI writes unset fields) pass.
// Keys match case-insensitively, as the CLI's decoder matches them.
func unknownFields(raw map[string]json.RawMessage) []problem {
	var out []problem
	for k, v := range raw {
		if known(strings.ToLower(k)) || isEmpty(v) {
			continue
		}
		out = append(out, problem{trim(k), true, "dartup does not know this setting (from a newer nats CLI?) and will not connect while ignoring it; remove it, or pass --server, --user, --tls-* instead of --context"})
	}
	slices.SortFunc(out, func(a, b problem) int { return strings.Compare(a.field, b.field) })
	return out
}

// knownFields are the JSON names of settings' fields.
var knownFields = func() []string {
	t := reflect.TypeFor[settings]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		names = append(names, t.Field(i).Tag.Get("json"))
	}
	return names
}()

func known(k string) bool { return slices.Contains(knownFields, k) }

// isEmpty reports whether a JSON value is unset: "", null, false, 0, [] or {}.
func isEmpty(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case `""`, "null", "false", "0", "[]", "{}":
		return true
	}
	return false
}

// conflicts are settings that contradict each other or cannot work.
func conflicts(s *settings) []string {
	var msgs []string
	var kinds []string
	if s.URL != stripUserinfo(s.URL) { // nats.go would send these, not the fields'
		kinds = append(kinds, "url")
	}
	for _, k := range []struct{ name, v string }{{"user", s.User}, {"token", s.Token}, {"creds", s.Creds}, {"nkey", s.NKey}} {
		if k.v != "" {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) > 1 {
		msgs = append(msgs, fmt.Sprintf("fields %s are set together: keep one kind of credentials (nats context edit NAME)", strings.Join(kinds, ", ")))
	}
	if s.Password != "" && s.User == "" {
		msgs = append(msgs, `field "password" is set without "user": add the user name`)
	}
	if (s.Cert == "") != (s.Key == "") {
		msgs = append(msgs, `fields "cert" and "key" go together: set both or neither`)
	}
	if strings.HasPrefix(s.Creds, "op://") {
		msgs = append(msgs, `field "creds" is a 1Password reference (op://…), which dartup does not read: save the credentials to a file (op read … > user.creds) and point creds at it`)
	}
	if p := s.InboxPrefix; p != "" && (strings.ContainsAny(p, "*> \t\r\n") || strings.HasSuffix(p, ".") || strings.HasPrefix(p, ".") || strings.Contains(p, "..")) {
		msgs = append(msgs, fmt.Sprintf(`field "inbox_prefix" %q is not a subject prefix (tokens without wildcards or spaces, like _INBOX.me)`, trim(p)))
	}
	return msgs
}

// expand turns checked settings into a Context, expanding ~ in paths and
// $VARIABLES in creds (as the nats CLI does).
func expand(s *settings) (*Context, error) {
	c := &Context{
		URL: s.URL, User: s.User, Password: s.Password, Token: s.Token,
		InboxPrefix: s.InboxPrefix, TLSFirst: s.TLSFirst,
	}
	creds := os.ExpandEnv(s.Creds)
	if s.Creds != "" && creds == "" {
		return nil, fmt.Errorf(`field "creds" %q expands to nothing: set the environment variable it names`, trim(s.Creds))
	}
	var errs []error
	for _, p := range []struct {
		field string
		in    string
		out   *string
	}{{"creds", creds, &c.Creds}, {"nkey", s.NKey, &c.NKey}, {"ca", s.CA, &c.CA}, {"cert", s.Cert, &c.Cert}, {"key", s.Key, &c.Key}} {
		v, err := expandHome(p.in)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %q: %w", p.field, err))
		}
		*p.out = v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// expandHome replaces a leading "~" or "~/" with the home directory.
func expandHome(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, "~")
	if !ok || (rest != "" && rest[0] != '/' && rest[0] != filepath.Separator) {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", fmt.Errorf("cannot expand ~ in %q: the home directory is unknown (set HOME)", trim(p))
	}
	return home + rest, nil
}
