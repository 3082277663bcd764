package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/natsctx"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// connFlags are the connection flags every client command takes.
type connFlags struct {
	servers   []string
	user      string
	password  string
	basicAuth bool
	context   string
	timeout   time.Duration
	tlsCA     string
	tlsCert   string
	tlsKey    string
	insecure  bool
	// extra nats.go options the command adds to the connection.
	extra []nats.Option
}

func (f *connFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringSliceVarP(&f.servers, "server", "s", nil, "dartup NATS URL(s), comma-separated (env DARTUP_URL or DART_UP_URL; default "+clientsdk.DefaultURL+")")
	fs.StringSliceVar(&f.servers, "url", nil, "the same as --server (dart_up's name for it)")
	fs.StringVar(&f.user, "user", os.Getenv("DARTUP_USER"), "user name (env DARTUP_USER)")
	fs.StringVar(&f.password, "password", "", "password (prefer env DARTUP_PASSWORD or -B: flags show in process lists)")
	fs.BoolVarP(&f.basicAuth, "basic-auth", "B", false, "prompt for user name and password")
	fs.StringVar(&f.context, "context", "", "use this `nats context` for the URL and credentials")
	fs.DurationVar(&f.timeout, "connect-timeout", 10*time.Second, "how long to wait for the server")
	fs.StringVar(&f.tlsCA, "tls-ca", os.Getenv("DARTUP_TLS_CA"), "verify the server's TLS certificate with this CA (PEM; env DARTUP_TLS_CA; default: the nats context's, else the system's)")
	fs.StringVar(&f.tlsCert, "tls-cert", os.Getenv("DARTUP_TLS_CERT"), "client certificate (PEM) for a server with --tls-verify-clients (env DARTUP_TLS_CERT)")
	fs.StringVar(&f.tlsKey, "tls-key", os.Getenv("DARTUP_TLS_KEY"), "private key (PEM) of --tls-cert (env DARTUP_TLS_KEY)")
	fs.BoolVar(&f.insecure, "insecure", false, "send the password to a server off loopback even without TLS (something else protects the network)")
}

// tlsFiles returns the CA, client certificate and key to use: the flags (or
// their env variables), else the nats context's (with ~ expanded).
func (f *connFlags) tlsFiles(nctx *natsctx.Context) (ca, cert, key string) {
	ca, cert, key = f.tlsCA, f.tlsCert, f.tlsKey
	if nctx != nil {
		if ca == "" {
			ca = nctx.CA
		}
		if cert == "" && key == "" {
			cert, key = nctx.Cert, nctx.Key
		}
	}
	return ca, cert, key
}

// connect dials the server described by the flags, the environment and the
// nats context, in that order of precedence.
func (f *connFlags) connect(ctx context.Context) (*clientsdk.Client, error) {
	opts, _, err := f.resolve()
	if err != nil {
		return nil, err
	}
	return f.dial(ctx, opts, f.extra...)
}

// resolve turns the flags, the environment and the nats context into client
// options (prompting for a password once, with -B), so that a command that
// needs several connections dials them with the same credentials. The CA it
// verifies the server with is returned too (for the workers of `dartup
// runner`).
func (f *connFlags) resolve() ([]clientsdk.Option, string, error) {
	var opts []clientsdk.Option
	urls := f.servers
	for _, env := range []string{"DARTUP_URL", "DART_UP_URL"} {
		if v := os.Getenv(env); len(urls) == 0 && v != "" {
			urls = strings.Split(v, ",")
		}
	}
	if err := checkServerURLs(urls); err != nil {
		return nil, "", err
	}
	nctx, err := f.loadContext()
	if err != nil {
		return nil, "", err
	}
	if nctx != nil && len(urls) == 0 {
		if err := checkServerURLs([]string{nctx.ServerURL()}); err != nil {
			return nil, "", fmt.Errorf("nats context %q (%s): %w", f.context, nctx.Path, err)
		}
	}
	ca, cert, key := f.tlsFiles(nctx)
	if ca != "" || cert != "" || key != "" {
		if (cert == "") != (key == "") {
			return nil, "", usageErr(errors.New("--tls-cert and --tls-key go together"))
		}
		opts = append(opts, clientsdk.WithTLS(ca, cert, key))
	}
	if f.insecure {
		opts = append(opts, clientsdk.WithPlaintextPassword())
	}
	user, pass := f.user, f.password
	if pass == "" {
		pass = os.Getenv("DARTUP_PASSWORD")
	}
	if f.basicAuth {
		var err error
		user, pass, err = promptCredentials(user)
		if err != nil {
			return nil, "", err
		}
	}
	if user != "" {
		opts = append(opts, clientsdk.WithUserPassword(user, pass))
	} else if pass != "" {
		return nil, "", usageErr(errors.New("a password was given without a user; add --user NAME"))
	}
	if nctx != nil {
		if user != "" { // the caller's credentials win over all of the context's
			nctx = nctx.WithoutCredentials()
		}
		if len(urls) == 0 {
			urls = []string{nctx.ServerURL()}
		}
		nopts, err := nctx.Options()
		if err != nil {
			return nil, "", fmt.Errorf("nats context %q: %w", f.context, err)
		}
		opts = append(opts, clientsdk.WithNATSOptions(nopts...))
	}
	if len(urls) > 0 {
		opts = append(opts, clientsdk.WithURL(urls...))
	}
	return opts, ca, nil
}

// loadContext reads the nats context of --context (nil without it).
func (f *connFlags) loadContext() (*natsctx.Context, error) {
	if f.context == "" {
		return nil, nil
	}
	nctx, err := natsctx.Load(f.context)
	switch {
	case errors.Is(err, natsctx.ErrNotFound) || errors.Is(err, natsctx.ErrInvalidName):
		return nil, usageErr(fmt.Errorf("nats context %q: %w; list them with `nats context ls`", f.context, err))
	case err != nil:
		return nil, usageErr(fmt.Errorf("nats context %q: %w", f.context, err))
	}
	return nctx, nil
}

// checkServerURLs refuses an HTTP URL (dart_up's habit: its control API
// was HTTP) with the NATS URL to use instead, rather than hanging on it.
func checkServerURLs(urls []string) error {
	for _, u := range urls {
		rest, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(u)), "http://")
		if !ok {
			rest, ok = strings.CutPrefix(strings.ToLower(strings.TrimSpace(u)), "https://")
		}
		if !ok {
			continue
		}
		host := strings.SplitN(strings.SplitN(rest, "/", 2)[0], ":", 2)[0]
		return usageErr(fmt.Errorf("%s is an HTTP URL: that is the gateway, where apps and lambdas answer; dartup's commands talk NATS, e.g. --server nats://%s:4222", u, host))
	}
	return nil
}

// dial connects with resolved options plus extra nats.go options (which may
// rename the connection).
func (f *connFlags) dial(ctx context.Context, opts []clientsdk.Option, extra ...nats.Option) (*clientsdk.Client, error) {
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	opts = append(opts, clientsdk.WithName("dartup-cli"), clientsdk.WithNATSOptions(nats.Timeout(f.timeout)), clientsdk.WithNATSOptions(extra...))
	return clientsdk.Connect(cctx, opts...)
}

// promptCredentials asks for a user name (unless given) and a hidden password on the terminal.
func promptCredentials(user string) (string, string, error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return "", "", usageErr(errors.New("-B/--basic-auth needs a terminal to prompt on; use --user and DARTUP_PASSWORD instead"))
	}
	if user == "" {
		fmt.Fprint(os.Stderr, "Username: ")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil {
			return "", "", err
		}
		user = strings.TrimSpace(line)
	}
	fmt.Fprint(os.Stderr, "Password: ")
	p, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", "", err
	}
	return user, string(p), nil
}

// withClient runs fn with a connected client and the command's context.
func withClient(cmd *cobra.Command, f *connFlags, fn func(ctx context.Context, c *clientsdk.Client) error) error {
	ctx := cmd.Context()
	c, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}
