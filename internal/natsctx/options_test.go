package natsctx

import (
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// startAuthServer starts a real nats-server on a loopback port that knows
// user alice (password "right-pw") and the nkey user pub.
func startAuthServer(t *testing.T, pub string) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Users: []*server.User{{Username: "alice", Password: "right-pw"}},
		Nkeys: []*server.NkeyUser{{Nkey: pub}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s.ClientURL()
}

func newSeed(t *testing.T, dir string) (pub, seedFile string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ = kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile = filepath.Join(dir, "user.nk")
	writeFile(t, seedFile, string(seed)+"\n")
	return pub, seedFile
}

// TestOptionsAuthenticate: a context file in the CLI's layout connects to
// a real server with the credentials it holds, and wrong ones are refused
// (so that the context's options are what authenticates).
func TestOptionsAuthenticate(t *testing.T) {
	dir, home := setupXDG(t)
	pub, _ := newSeed(t, home)
	_, otherSeed := newSeed(t, t.TempDir())
	url := startAuthServer(t, pub)
	cases := []struct {
		name   string
		layout cliLayout
		ok     bool
	}{
		{"user and password", cliLayout{URL: url, User: "alice", Password: "right-pw"}, true},
		{"wrong password", cliLayout{URL: url, User: "alice", Password: "wrong-pw"}, false},
		{"nkey under ~", cliLayout{URL: url, NKey: "~/user.nk"}, true},
		{"unknown nkey", cliLayout{URL: url, NKey: otherSeed}, false},
		{"no credentials", cliLayout{URL: url}, false},
		{"inbox prefix", cliLayout{URL: url, User: "alice", Password: "right-pw", InboxPrefix: "_INBOX.alice"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "c.json"), tc.layout.json(t))
			c, err := Load("c")
			if err != nil {
				t.Fatal(err)
			}
			opts, err := c.Options()
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(c.ServerURL(), append(opts, nats.Timeout(5*time.Second))...)
			if !tc.ok {
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("connect = %v, want an authorization error", err)
				}
				if nc != nil {
					nc.Close()
				}
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer nc.Close()
			if want := tc.layout.InboxPrefix; want != "" && !strings.HasPrefix(nc.NewRespInbox(), want+".") {
				t.Errorf("inbox %q does not use the context's prefix %q", nc.NewRespInbox(), want)
			}
			if err := nc.Flush(); err != nil {
				t.Errorf("flush: %v", err)
			}
		})
	}
}

func TestOptionsKeyFiles(t *testing.T) {
	dir, home := setupXDG(t)
	writeFile(t, filepath.Join(home, "garbage.nk"), "not a seed")
	cases := []struct {
		name   string
		layout cliLayout
		says   string
	}{
		{"missing creds", cliLayout{Creds: "~/none.creds"}, "creds"},
		{"missing nkey", cliLayout{NKey: "/no/such/seed.nk"}, "nkey"},
		{"garbage nkey", cliLayout{NKey: "~/garbage.nk"}, "garbage.nk"},
		{"creds is a directory", cliLayout{Creds: home}, "not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "k.json"), tc.layout.json(t))
			c, err := Load("k")
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Options()
			if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), c.Path) {
				t.Errorf("Options() = %v, want an error naming %q and %s", err, tc.says, c.Path)
			}
		})
	}
}

// WithoutCredentials leaves nothing nats.go would send: the credential
// fields, and the user or token of each URL (which nats.go sends instead of
// its options'), wherever url.Parse finds them.
func TestWithoutCredentials(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"nats://alice:pw@127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"tok@127.0.0.1:4222", "127.0.0.1:4222"},
		{"nats://a:p@ss@h1:4222,tls://t@[::1]:4222/x", "nats://h1:4222,tls://[::1]:4222/x"},
		{"nats://h:4222/a@b", "nats://h:4222/a@b"},
		{"", ""},
	} {
		c := (&Context{URL: tc.url, User: "u", Password: "p", Token: "t", Creds: "c", NKey: "n"}).WithoutCredentials()
		if c.URL != tc.want || c.HasCredentials() {
			t.Errorf("WithoutCredentials of %q: URL %q (want %q), credentials left: %v", tc.url, c.URL, tc.want, c.HasCredentials())
		}
		for _, s := range strings.Split(c.URL, ",") {
			if !strings.Contains(s, "://") {
				s = "nats://" + s
			}
			if u, err := url.Parse(s); err != nil || u.User != nil {
				t.Errorf("%q: url.Parse finds user %v (%v)", s, u.User, err)
			}
		}
	}
	if !(&Context{URL: "nats://t@h:4222"}).HasCredentials() {
		t.Error("a token in the URL is no credential")
	}
}
