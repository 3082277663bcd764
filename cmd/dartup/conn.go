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
	"github.com/nats-io/jsm.go/natscontext"
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
	// extra nats.go options the command adds to the connection.
	extra []nats.Option
}

func (f *connFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringSliceVarP(&f.servers, "server", "s", nil, "dartup NATS URL(s), comma-separated (env DARTUP_URL; default "+clientsdk.DefaultURL+")")
	fs.StringVar(&f.user, "user", os.Getenv("DARTUP_USER"), "user name (env DARTUP_USER)")
	fs.StringVar(&f.password, "password", "", "password (prefer env DARTUP_PASSWORD or -B: flags show in process lists)")
	fs.BoolVarP(&f.basicAuth, "basic-auth", "B", false, "prompt for user name and password")
	fs.StringVar(&f.context, "context", "", "use this `nats context` for the URL and credentials")
	fs.DurationVar(&f.timeout, "connect-timeout", 10*time.Second, "how long to wait for the server")
}

// connect dials the server described by the flags, the environment and the
// nats context, in that order of precedence.
func (f *connFlags) connect(ctx context.Context) (*clientsdk.Client, error) {
	opts, err := f.resolve()
	if err != nil {
		return nil, err
	}
	return f.dial(ctx, opts, f.extra...)
}

// resolve turns the flags, the environment and the nats context into client
// options (prompting for a password once, with -B), so that a command that
// needs several connections dials them with the same credentials.
func (f *connFlags) resolve() ([]clientsdk.Option, error) {
	var opts []clientsdk.Option
	urls := f.servers
	if len(urls) == 0 {
		if v := os.Getenv("DARTUP_URL"); v != "" {
			urls = []string{v}
		}
	}
	if f.context != "" {
		nctx, err := natscontext.New(f.context, true)
		if err != nil {
			return nil, usageErr(fmt.Errorf("nats context %q: %w (list them with `nats context ls`)", f.context, err))
		}
		if len(urls) == 0 {
			urls = []string{nctx.ServerURL()}
		}
		nopts, err := nctx.NATSOptions()
		if err != nil {
			return nil, fmt.Errorf("nats context %q: %w", f.context, err)
		}
		opts = append(opts, clientsdk.WithNATSOptions(nopts...))
	}
	if len(urls) > 0 {
		opts = append(opts, clientsdk.WithURL(urls...))
	}
	user, pass := f.user, f.password
	if pass == "" {
		pass = os.Getenv("DARTUP_PASSWORD")
	}
	if f.basicAuth {
		var err error
		user, pass, err = promptCredentials(user)
		if err != nil {
			return nil, err
		}
	}
	if user != "" {
		opts = append(opts, clientsdk.WithUserPassword(user, pass))
	} else if pass != "" {
		return nil, usageErr(errors.New("a password was given without a user; add --user NAME"))
	}
	return opts, nil
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
