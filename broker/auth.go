package broker

import (
	"context"
	"crypto/subtle"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"

	"github.com/nats-io/nats-server/v2/server"
)

// authenticator is the embedded server's CustomClientAuthentication. A client
// is admitted when it presents the internal token (dartup's own in-process
// connections), a user and password from the password file, or nothing at all
// from a loopback address while passwords are not required.
type authenticator struct {
	logins        *loginGuard
	require       bool
	internalToken string
	// workers holds the secret of worker tokens; nil refuses them.
	workers *workerSecret
}

func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o.Token != "" && subtle.ConstantTimeCompare([]byte(o.Token), []byte(a.internalToken)) == 1 {
		c.RegisterUser(&server.User{Username: "dartup-internal"})
		return true
	}
	if strings.HasPrefix(o.Token, clientsdk.WorkerTokenPrefix) {
		return a.checkWorkerToken(c, o.Token)
	}
	if o.Username != "" {
		return a.checkPassword(c, o.Username, o.Password)
	}
	if !a.require && isLoopbackAddr(c.RemoteAddress()) {
		return true
	}
	a.logins.warn("nats-no-credentials", "refused NATS connection without credentials", "remote", addrString(c.RemoteAddress()))
	return false
}

// checkPassword admits a user with the right password, through the login
// guard: over the limits it refuses at once, without a bcrypt check. The
// server may block here (it cleared its auth timer on CONNECT); the guard
// bounds the wait.
func (a *authenticator) checkPassword(c server.ClientAuthentication, user, password string) bool {
	remote := c.RemoteAddress()
	out := a.logins.check(context.Background(), sourceKeyOf(remote), user, password)
	switch out.result {
	case loginOK:
		c.RegisterUser(&server.User{Username: user})
		return true
	case loginLimited:
		a.logins.warn("nats-limited", "refused NATS connection: too many failed logins from this address or for this user (no password check)",
			"user", user, "remote", addrString(remote), "retry_after", out.retryAfter.Round(time.Second))
	case loginBusy:
		a.logins.warn("nats-busy", "refused NATS connection: no password check free in time", "user", user, "remote", addrString(remote))
	default:
		a.logins.warn("nats-wrong", "refused NATS connection: wrong user or password", "user", user, "remote", addrString(remote))
	}
	return false
}

func addrString(a net.Addr) string {
	if a == nil {
		return "in-process"
	}
	return a.String()
}

// isLoopbackAddr reports whether a is a loopback TCP address. A nil address is
// an in-process connection, which counts as local.
func isLoopbackAddr(a net.Addr) bool {
	if a == nil {
		return true
	}
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.IsLoopback()
	}
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// isLoopbackHost reports whether host (an IP or "localhost") is loopback.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
