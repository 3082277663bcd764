package natsctx

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// cliLayout is the file as `nats context save` writes it (jsm.go
// natscontext's settings, in its order, through json.MarshalIndent): every
// field present, unset ones empty, windows_ca_certs_match null.
type cliLayout struct {
	Name                string   `json:"name,omitempty"`
	Description         string   `json:"description"`
	URL                 string   `json:"url"`
	SocksProxy          string   `json:"socks_proxy"`
	Token               string   `json:"token"`
	User                string   `json:"user"`
	Password            string   `json:"password"`
	Creds               string   `json:"creds"`
	NKey                string   `json:"nkey"`
	Cert                string   `json:"cert"`
	Key                 string   `json:"key"`
	CA                  string   `json:"ca"`
	NSCLookup           string   `json:"nsc"`
	JSDomain            string   `json:"jetstream_domain"`
	JSAPIPrefix         string   `json:"jetstream_api_prefix"`
	JSEventPrefix       string   `json:"jetstream_event_prefix"`
	InboxPrefix         string   `json:"inbox_prefix"`
	UserJwt             string   `json:"user_jwt"`
	ColorScheme         string   `json:"color_scheme"`
	TLSFirst            bool     `json:"tls_first"`
	WinCertStoreType    string   `json:"windows_cert_store"`
	WinCertStoreMatchBy string   `json:"windows_cert_match_by"`
	WinCertStoreMatch   string   `json:"windows_cert_match"`
	WinCertStoreCaMatch []string `json:"windows_ca_certs_match"`
}

func (l cliLayout) json(t *testing.T) string {
	t.Helper()
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// setupXDG points XDG_CONFIG_HOME and HOME at fresh dirs and returns the
// context dir and the home dir.
func setupXDG(t *testing.T) (ctxDir, home string) {
	t.Helper()
	home = t.TempDir()
	xdg := filepath.Join(t.TempDir(), "xdg")
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", xdg)
	ctxDir = filepath.Join(xdg, "nats", "context")
	if err := os.MkdirAll(ctxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return ctxDir, home
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadReadsWhatTheCLIWrites(t *testing.T) {
	home := "" // set per case by setupXDG
	cases := []struct {
		name string
		file func(t *testing.T) string
		want func() Context
	}{
		{"user and password", func(t *testing.T) string {
			return cliLayout{URL: "nats://a:4222,nats://b:4222", User: "alice", Password: "pw", Description: "d", ColorScheme: "blue", JSEventPrefix: "$JS.EVENT"}.json(t)
		}, func() Context {
			return Context{URL: "nats://a:4222,nats://b:4222", User: "alice", Password: "pw"}
		}},
		{"token, inbox prefix, tls first", func(t *testing.T) string {
			return cliLayout{Token: "s3cret", InboxPrefix: "_INBOX.me", TLSFirst: true}.json(t)
		}, func() Context { return Context{Token: "s3cret", InboxPrefix: "_INBOX.me", TLSFirst: true} }},
		{"~ in TLS files and nkey", func(t *testing.T) string {
			return cliLayout{NKey: "~/keys/u.nk", CA: "~/ca.pem", Cert: "~/c.pem", Key: "/abs/k.pem"}.json(t)
		}, func() Context {
			return Context{NKey: home + "/keys/u.nk", CA: home + "/ca.pem", Cert: home + "/c.pem", Key: "/abs/k.pem"}
		}},
		{"~user is not the home", func(t *testing.T) string { return cliLayout{CA: "~bob/ca.pem"}.json(t) },
			func() Context { return Context{CA: "~bob/ca.pem"} }},
		{"$VARIABLES and ~ in creds", func(t *testing.T) string {
			t.Setenv("NATSCTX_TEST_DIR", "/creds/dir")
			return cliLayout{Creds: "$NATSCTX_TEST_DIR/u.creds"}.json(t)
		}, func() Context { return Context{Creds: "/creds/dir/u.creds"} }},
		{"hand-written, other key case, no url", func(t *testing.T) string { return `{"User": "bob", "PASSWORD": "x", "future_thing": ""}` },
			func() Context { return Context{User: "bob", Password: "x"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var dir string
			dir, home = setupXDG(t)
			writeFile(t, filepath.Join(dir, "ctx.json"), tc.file(t))
			c, err := Load("ctx")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := tc.want()
			want.Name, want.Path = "ctx", filepath.Join(dir, "ctx.json")
			if *c != want {
				t.Errorf("Load:\n got %+v\nwant %+v", *c, want)
			}
		})
	}
}

func TestServerURLDefault(t *testing.T) {
	if got := (&Context{}).ServerURL(); got != nats.DefaultURL {
		t.Errorf("ServerURL of no url = %q, want %q", got, nats.DefaultURL)
	}
	if got := (&Context{URL: "nats://x:1"}).ServerURL(); got != "nats://x:1" {
		t.Errorf("ServerURL = %q", got)
	}
}

// TestLoadRefuses: every setting dartup cannot honour, every contradiction
// and every malformed file fails with the file and the field named.
func TestLoadRefuses(t *testing.T) {
	cases := []struct {
		name string
		file func(t *testing.T) string
		says []string
	}{
		{"nsc", func(t *testing.T) string { return cliLayout{NSCLookup: "nsc://o/a/u"}.json(t) }, []string{`"nsc"`, "nsc generate creds"}},
		{"socks proxy", func(t *testing.T) string { return cliLayout{SocksProxy: "socks5://p:1080"}.json(t) }, []string{`"socks_proxy"`, "SOCKS"}},
		{"user jwt", func(t *testing.T) string { return cliLayout{UserJwt: "eyJ..."}.json(t) }, []string{`"user_jwt"`, "--creds"}},
		{"jetstream domain", func(t *testing.T) string { return cliLayout{JSDomain: "hub"}.json(t) }, []string{`"jetstream_domain"`}},
		{"jetstream api prefix", func(t *testing.T) string { return cliLayout{JSAPIPrefix: "x.api"}.json(t) }, []string{`"jetstream_api_prefix"`}},
		{"windows store", func(t *testing.T) string {
			return cliLayout{WinCertStoreType: "user", WinCertStoreMatchBy: "subject", WinCertStoreMatch: "me"}.json(t)
		}, []string{`"windows_cert_store"`, `"windows_cert_match_by"`, `"windows_cert_match"`, "PEM"}},
		{"windows CA match", func(t *testing.T) string { return cliLayout{WinCertStoreCaMatch: []string{"ca"}}.json(t) }, []string{`"windows_ca_certs_match"`}},
		{"unknown field set", func(t *testing.T) string { return `{"url": "nats://x:4222", "oauth_token": "abc"}` }, []string{`"oauth_token"`, "does not know"}},
		{"user and creds", func(t *testing.T) string { return cliLayout{User: "a", Password: "b", Creds: "/u.creds"}.json(t) }, []string{"user, creds", "one kind"}},
		{"user in the URL and creds", func(t *testing.T) string { return cliLayout{URL: "nats://a:b@h:4222", Creds: "/u.creds"}.json(t) }, []string{"url, creds", "one kind"}},
		{"token in one of the URLs and a user", func(t *testing.T) string {
			return cliLayout{URL: "nats://h1:4222,nats://tok@h2:4222", User: "a", Password: "b"}.json(t)
		}, []string{"url, user", "one kind"}},
		{"token and nkey", func(t *testing.T) string { return cliLayout{Token: "t", NKey: "/u.nk"}.json(t) }, []string{"token, nkey"}},
		{"password without user", func(t *testing.T) string { return cliLayout{Password: "b"}.json(t) }, []string{`"password"`, `without "user"`}},
		{"cert without key", func(t *testing.T) string { return cliLayout{Cert: "/c.pem"}.json(t) }, []string{`"cert" and "key"`}},
		{"key without cert", func(t *testing.T) string { return cliLayout{Key: "/k.pem"}.json(t) }, []string{`"cert" and "key"`}},
		{"1Password creds", func(t *testing.T) string { return cliLayout{Creds: "op://vault/item/creds"}.json(t) }, []string{`"creds"`, "1Password"}},
		{"creds variable unset", func(t *testing.T) string { return cliLayout{Creds: "$NATSCTX_TEST_UNSET"}.json(t) }, []string{`"creds"`, "expands to nothing"}},
		{"wildcard inbox prefix", func(t *testing.T) string { return cliLayout{InboxPrefix: "_INBOX.>"}.json(t) }, []string{`"inbox_prefix"`}},
		{"inbox prefix ends in a dot", func(t *testing.T) string { return cliLayout{InboxPrefix: "_INBOX."}.json(t) }, []string{`"inbox_prefix"`}},
		{"empty file", func(t *testing.T) string { return "  \n" }, []string{"empty", "nats context save"}},
		{"not JSON", func(t *testing.T) string { return `{"user": "a",` }, []string{"not valid JSON"}},
		{"an array", func(t *testing.T) string { return `["user"]` }, []string{"array, not an object"}},
		{"null", func(t *testing.T) string { return `null` }, []string{"not a JSON object"}},
		{"wrong type", func(t *testing.T) string { return `{"user": 42}` }, []string{`"user"`, "number"}},
		{"trailing data", func(t *testing.T) string { return `{"user": "a"} {"user": "b"}` }, []string{"not valid JSON"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := setupXDG(t)
			path := filepath.Join(dir, "bad.json")
			writeFile(t, path, tc.file(t))
			c, err := Load("bad")
			if err == nil {
				t.Fatalf("Load accepted %s: %+v", tc.name, c)
			}
			for _, s := range append([]string{path}, tc.says...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not say %q: %v", s, err)
				}
			}
		})
	}
}

func TestLoadNames(t *testing.T) {
	dir, _ := setupXDG(t)
	writeFile(t, filepath.Join(dir, "ok.name-1.json"), cliLayout{URL: "nats://x:1"}.json(t))
	if _, err := Load("ok.name-1"); err != nil {
		t.Errorf("Load(ok.name-1): %v", err)
	}
	// A file where a traversal would land must not be read.
	writeFile(t, filepath.Join(dir, "..", "escape.json"), cliLayout{URL: "nats://x:1"}.json(t))
	for _, name := range []string{"", "../escape", "..", "a..b", "a/b", `a\b`, "a\x00b", "a\nb", strings.Repeat("n", MaxNameLen+1)} {
		_, err := Load(name)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("Load(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := Load(strings.Repeat("n", MaxNameLen)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(a name of MaxNameLen) = %v, want ErrNotFound", err)
	}
	_, err := Load("nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), filepath.Join(dir, "nope.json")) {
		t.Errorf("Load(nope) = %v, want ErrNotFound naming the file", err)
	}
}

func TestLoadBoundsTheFile(t *testing.T) {
	dir, _ := setupXDG(t)
	big := `{"description": "` + strings.Repeat("x", MaxFileSize) + `"}`
	writeFile(t, filepath.Join(dir, "big.json"), big)
	if _, err := Load("big"); err == nil || !strings.Contains(err.Error(), "more than such a file holds") {
		t.Errorf("Load(big) = %v, want a size error", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("dir"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Load(a directory) = %v", err)
	}
}

// TestDirDefault: without XDG_CONFIG_HOME the contexts are in
// ~/.config/nats/context, as the nats CLI keeps them.
func TestDirDefault(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	d, err := Dir()
	if want := filepath.Join(home, ".config", "nats", "context"); err != nil || d != want {
		t.Errorf("Dir() = %q, %v; want %q", d, err, want)
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d, "h.json"), cliLayout{User: "u"}.json(t))
	if c, err := Load("h"); err != nil || c.User != "u" {
		t.Errorf("Load(h) = %+v, %v", c, err)
	}
}

// TestLoadBoundsTheError: a file with thousands of unknown fields gets an
// error of bounded size that still says how many there were.
func TestLoadBoundsTheError(t *testing.T) {
	dir, _ := setupXDG(t)
	var b strings.Builder
	b.WriteString("{")
	for i := range 5000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strings.Repeat("x", 100) + strconv.Itoa(i) + `": 1`)
	}
	b.WriteString("}")
	writeFile(t, filepath.Join(dir, "many.json"), b.String())
	_, err := Load("many")
	if err == nil || len(err.Error()) > 4096 || !strings.Contains(err.Error(), "and 4992 more") {
		t.Errorf("Load(5000 unknown fields): %d bytes of error: %.300v", len(fmt.Sprint(err)), err)
	}
}
