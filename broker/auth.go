package broker

import (
	"crypto/subtle"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/dartup/dartup/clientsdk"

	"github.com/nats-io/nats-server/v2/server"
)

// authenticator is the embedded server's CustomClientAuthentication. A client
// is admitted when it presents the internal token (dartup's own in-process
// connections), a worker token, a user and password from the password file,
// or nothing at all from a loopback address while passwords are not required;
// with verifyClients, only with a verified client certificate besides (but
// for the internal and worker tokens).
type authenticator struct {
	passwords     *Passwords
	require       bool
	internalToken string
	// verifyClients refuses TCP clients without a verified client
	// certificate, except workers presenting their scoped token (the runner
	// gives them no certificate: it is the node's own credential).
	verifyClients bool
	// workers holds the secret of worker tokens; nil refuses them.
	workers *workerSecret
	logger  *slog.Logger
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
	if a.verifyClients && c.RemoteAddress() != nil {
		if st := c.GetTLSConnectionState(); st == nil || len(st.VerifiedChains) == 0 {
			a.logger.Warn("refused NATS connection without a client certificate (--tls-verify-clients)", "user", o.Username, "remote", addrString(c.RemoteAddress()))
			return false
		}
	}
	if o.Username != "" {
		if a.passwords.Verify(o.Username, o.Password) {
			c.RegisterUser(&server.User{Username: o.Username})
			return true
		}
		a.logger.Warn("refused NATS connection: wrong user or password", "user", o.Username, "remote", addrString(c.RemoteAddress()))
		return false
	}
	if !a.require && isLoopbackAddr(c.RemoteAddress()) {
		return true
	}
	a.logger.Warn("refused NATS connection without credentials", "remote", addrString(c.RemoteAddress()))
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
