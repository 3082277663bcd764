package clientsdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultURL is where a local `dartup serve` listens for NATS.
const DefaultURL = "nats://127.0.0.1:4222"

// DefaultRequestTimeout bounds a control API call when ctx has no deadline.
const DefaultRequestTimeout = 10 * time.Second

// Client drives a dartup server over NATS. It is safe for concurrent use.
type Client struct {
	nc     *nats.Conn
	ownsNC bool
	// lambdas remembers the names InvokeAsync found to be lambdas.
	lambdas lambdaCache
}

type connectConfig struct {
	urls     []string
	user     string
	password string
	name     string
	natsOpts []nats.Option
	conn     *nats.Conn
	// WithTLS
	tls                       bool
	caFile, certFile, keyFile string
	plaintextPassword         bool
}

// Option configures Connect.
type Option func(*connectConfig) error

// WithURL sets the server URL(s); several may be given, comma-separated or
// as separate arguments, and the client fails over between them.
func WithURL(urls ...string) Option {
	return func(c *connectConfig) error {
		for _, u := range urls {
			for _, p := range strings.Split(u, ",") {
				if p = strings.TrimSpace(p); p != "" {
					c.urls = append(c.urls, p)
				}
			}
		}
		return nil
	}
}

// WithUserPassword authenticates as user with password.
func WithUserPassword(user, password string) Option {
	return func(c *connectConfig) error {
		if user == "" {
			return errors.New("clientsdk: user name is empty")
		}
		c.user, c.password = user, password
		return nil
	}
}

// WithName sets the connection name shown in server monitoring.
func WithName(name string) Option {
	return func(c *connectConfig) error { c.name = name; return nil }
}

// WithNATSOptions adds raw nats.go options (e.g. from a `nats context`).
func WithNATSOptions(opts ...nats.Option) Option {
	return func(c *connectConfig) error { c.natsOpts = append(c.natsOpts, opts...); return nil }
}

// WithConn uses an existing connection instead of dialing; Close leaves it open.
func WithConn(nc *nats.Conn) Option {
	return func(c *connectConfig) error {
		if nc == nil {
			return errors.New("clientsdk: WithConn given a nil connection")
		}
		c.conn = nc
		return nil
	}
}

// Connect dials a dartup server and returns a Client. With no WithURL it uses
// DefaultURL. A password or token is sent to a server that is not on loopback
// only over TLS (unless WithPlaintextPassword). It fails with a message naming
// the URL when the server cannot be reached, with ErrAuth when the server
// refuses the credentials, with ErrUntrustedServer when its TLS certificate
// does not verify, and with ErrPlaintextPassword when a password would cross
// the network in clear.
func Connect(ctx context.Context, opts ...Option) (*Client, error) {
	cfg := connectConfig{name: "dartup-client"}
	var errs []error
	for _, o := range opts {
		errs = append(errs, o(&cfg))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.conn != nil {
		return &Client{nc: cfg.conn}, nil
	}
	if len(cfg.urls) == 0 {
		cfg.urls = []string{DefaultURL}
	}
	nopts := []nats.Option{nats.Name(cfg.name), nats.MaxReconnects(-1)}
	if d, ok := ctx.Deadline(); ok {
		nopts = append(nopts, nats.Timeout(time.Until(d)))
	}
	if cfg.user != "" {
		nopts = append(nopts, nats.UserInfo(cfg.user, cfg.password))
	}
	nopts = append(nopts, cfg.natsOpts...)
	nopts = append(nopts, cfg.tlsOptions()...) // WithTLS wins over raw options
	o := nats.GetDefaultOptions()
	o.Servers = cfg.urls
	for _, opt := range nopts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	guarded := guardPassword(&o, cfg.plaintextPassword)
	nc, err := o.Connect()
	if err != nil {
		url := redactURLs(cfg.urls)
		if terr := tlsError(err, url, guarded); terr != nil {
			return nil, terr
		}
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			hint := ""
			if !hasClientCert(&o) && o.Secure {
				hint = "; a server started with --tls-verify-clients also needs a client certificate (--tls-cert and --tls-key)"
			}
			return nil, fmt.Errorf("%w: the server at %s refused the credentials; pass --user and --password (or -B), or set DARTUP_PASSWORD%s", ErrAuth, url, hint)
		}
		return nil, fmt.Errorf("cannot reach dartup at %s: %w (is `dartup serve` running? set --server or DARTUP_URL)", url, err)
	}
	return &Client{nc: nc, ownsNC: true}, nil
}

// ErrAuth is returned by Connect when the server refuses the credentials.
var ErrAuth = errors.New("authentication failed")

// Conn returns the underlying NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Close closes the connection if Connect dialed it.
func (c *Client) Close() {
	if c.ownsNC {
		c.nc.Close()
	}
}

// call sends req (JSON-encoded unless it is []byte or nil) to dartup.api.VERB and
// decodes the reply into resp. Service errors come back as *Error; no
// responders becomes an *Error 503 that says no dartup server answers.
func (c *Client) call(ctx context.Context, verb string, req, resp any) error {
	var body []byte
	switch r := req.(type) {
	case nil:
	case []byte:
		body = r
	default:
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", verb, err)
		}
		body = b
	}
	// Without a deadline of the caller's, a call may take TransientWindow in
	// all, each try DefaultRequestTimeout.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, TransientWindow)
		defer cancel()
	}
	var msg *nats.Msg
	// While JetStream elects leaders (a cluster lost a server), a server
	// answers 503 "Unavailable", or is too busy to answer in time: try again.
	// A timed-out verb may have run, so only verbs that may run twice are
	// retried after a timeout (all but remove and rollback).
	retryTimeouts := verb != VerbRemove && verb != VerbRollback
	err := retryUnavailable(ctx, func() error {
		tctx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
		m, err := c.nc.RequestMsgWithContext(tctx, apiRequest(tctx, verb, body))
		if err != nil {
			if errors.Is(err, nats.ErrNoResponders) {
				return Errorf(503, "NoServer", "no dartup server answers %s on this NATS; is `dartup serve` running?", APISubject(verb))
			}
			if retryTimeouts && ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
				return Errorf(503, "Unavailable", "%s: no answer within %s", verb, DefaultRequestTimeout)
			}
			return fmt.Errorf("%s: %w", verb, err)
		}
		if e := ErrorFromMsg(m); e != nil {
			return e
		}
		msg = m
		return nil
	})
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("decode %s reply: %w", verb, err)
	}
	return nil
}

// List returns a summary of every app. Errors: *Error from the server, or a
// transport error.
func (c *Client) List(ctx context.Context) ([]AppSummary, error) {
	var r ListResponse
	if err := c.call(ctx, VerbList, nil, &r); err != nil {
		return nil, err
	}
	return r.Apps, nil
}

// Info returns facts about the server that answers. Errors: as List.
func (c *Client) Info(ctx context.Context) (*ServerInfo, error) {
	var r ServerInfo
	if err := c.call(ctx, VerbInfo, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Describe returns an app's spec, versions, instances and recent events.
// Errors: *Error 404 when there is no such app, 400 for an invalid name.
func (c *Client) Describe(ctx context.Context, name string) (*AppInfo, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var r AppInfo
	if err := c.call(ctx, VerbDescribe, NameRequest{Name: name}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Kill stops every instance of app name; it stays stopped, across server
// restarts, until Start. Errors: *Error 404 for an unknown app.
func (c *Client) Kill(ctx context.Context, name string) (*AppSummary, error) {
	return c.nameVerb(ctx, VerbKill, name)
}

// Start starts an app stopped by Kill (or restarts an errored one).
// Errors: *Error 404 for an unknown app.
func (c *Client) Start(ctx context.Context, name string) (*AppSummary, error) {
	return c.nameVerb(ctx, VerbStart, name)
}

// RestartRequest is the request body of dartup.api.restart.
type RestartRequest struct {
	Name string `json:"name"`
	// Parallel, when > 0, sets how many instances are replaced at once
	// (kept in the spec for later rollouts).
	Parallel int `json:"parallel,omitempty"`
}

// Restart replaces every instance of app name with a fresh worker, one at
// a time (or parallel at a time): each new worker gets ready before the
// one it replaces stops taking requests. It returns the spec as stored;
// WaitDeployed with its Version and Revision waits for the outcome.
// Errors: *Error 404 for an unknown app, 409 for a stopped one.
func (c *Client) Restart(ctx context.Context, name string, parallel int) (*AppSpec, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var s AppSpec
	if err := c.call(ctx, VerbRestart, RestartRequest{Name: name, Parallel: parallel}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Remove stops an app and deletes its spec, artifacts and status. When no
// answer comes in time (the server died after removing it?), it asks once
// more, and a 404 then means the removal was done: it returns nil.
// Errors: *Error 404 for an unknown app.
func (c *Client) Remove(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	err := c.call(ctx, VerbRemove, NameRequest{Name: name}, nil)
	if _, isAnswer := AsError(err); err == nil || isAnswer || ctx.Err() != nil || !transient(err) {
		return err
	}
	// No answer: the removal may have been done and its answer lost (the
	// server died after it). Ask again: a removed app answers 404.
	err = c.call(ctx, VerbRemove, NameRequest{Name: name}, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// HeaderDeadline carries a control API request's deadline (Unix time in
// milliseconds): the server gives up on a request its caller no longer
// waits for, and applies nothing after it.
const HeaderDeadline = "Dartup-Deadline"

// apiRequest is a control API request with the caller's deadline.
func apiRequest(ctx context.Context, verb string, body []byte) *nats.Msg {
	m := nats.NewMsg(APISubject(verb))
	m.Data = body
	if d, ok := ctx.Deadline(); ok {
		m.Header.Set(HeaderDeadline, strconv.FormatInt(d.UnixMilli(), 10))
	}
	return m
}

func (c *Client) nameVerb(ctx context.Context, verb, name string) (*AppSummary, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var r AppSummary
	if err := c.call(ctx, verb, NameRequest{Name: name}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// redactURLs joins urls with any password replaced by "xxxxx", for messages.
func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = u
		if p, err := neturl.Parse(u); err == nil && p.User != nil {
			out[i] = p.Redacted()
		}
	}
	return strings.Join(out, ",")
}
