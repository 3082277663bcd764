package natsctx

import (
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// ServerURL returns the context's server URL(s), nats.DefaultURL when unset.
func (c *Context) ServerURL() string {
	if c.URL == "" {
		return nats.DefaultURL
	}
	return c.URL
}

// HasCredentials reports whether the context sets a user, token, creds or
// nkey, or a user or token in its URL.
func (c *Context) HasCredentials() bool {
	return c.User != "" || c.Token != "" || c.Creds != "" || c.NKey != "" || c.URL != stripUserinfo(c.URL)
}

// WithoutCredentials returns a copy of c without its credentials (user,
// password, token, creds, nkey, and a user or token in its URLs), for a
// caller whose own take precedence: nats.go would send those in a URL
// instead of the caller's.
func (c *Context) WithoutCredentials() *Context {
	out := *c
	out.User, out.Password, out.Token, out.Creds, out.NKey = "", "", "", "", ""
	out.URL = stripUserinfo(c.URL)
	return &out
}

// stripUserinfo removes the "user:password@" or "token@" of each of the
// comma-separated URLs, leaving the rest as written.
func stripUserinfo(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		rest := u
		scheme, after, ok := strings.Cut(u, "://")
		if ok {
			rest = after
		}
		host := rest
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			host = rest[:j]
		}
		at := strings.LastIndex(host, "@")
		if at < 0 {
			continue
		}
		rest = rest[at+1:]
		if ok {
			rest = scheme + "://" + rest
		}
		parts[i] = rest
	}
	return strings.Join(parts, ",")
}

// Options returns the nats.go options for the context's credentials (user
// and password, token, creds file or nkey seed), inbox prefix and TLS-first
// handshake. The TLS files (CA, Cert, Key) are left to the caller, which
// may override them with its own. It fails, naming the context file, when
// the creds or nkey file cannot be read or holds no usable key.
func (c *Context) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.Creds != "":
		if err := checkFile(c.Creds); err != nil {
			return nil, fmt.Errorf("%s: creds: %w", c.Path, err)
		}
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		if err := checkFile(c.NKey); err != nil {
			return nil, fmt.Errorf("%s: nkey: %w", c.Path, err)
		}
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("%s: nkey %s: %w", c.Path, c.NKey, err)
		}
		opts = append(opts, o)
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	if c.TLSFirst {
		opts = append(opts, nats.TLSHandshakeFirst())
	}
	return opts, nil
}

// checkFile fails unless path is a bounded regular file that can be opened.
func checkFile(path string) error {
	if err := statBounded(path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}
