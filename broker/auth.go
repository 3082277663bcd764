package broker

import (
	"context"
	"crypto/subtle"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

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
	logins        *loginGuard
	require       bool
	internalToken string
	// verifyClients refuses TCP clients without a verified client
	// certificate, except workers presenting their scoped token (the runner
	// gives them no certificate: it is the node's own credential).
	verifyClients bool
	// workers holds the secret of worker tokens; nil refuses them.
	workers *workerSecret
	// replyPrefixes are the operator's extra reply prefixes (Config.ReplyPrefixes).
	replyPrefixes []string
	// appUser is Config.AppUser.
	appUser func(uid uint32) bool
	// natsPort is the client port, once the server listens.
	natsPort func() int
	// apps knows the apps (and their token nonces) once the broker serves.
	apps atomic.Pointer[lambdaRouter]
}

func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o.Token != "" && subtle.ConstantTimeCompare([]byte(o.Token), []byte(a.internalToken)) == 1 {
		a.register(c, "dartup-internal", o.Name)
		return true
	}
	if strings.HasPrefix(o.Token, clientsdk.WorkerTokenPrefix) {
		return a.checkWorkerToken(c, o.Token)
	}
	if a.verifyClients && c.RemoteAddress() != nil {
		if st := c.GetTLSConnectionState(); st == nil || len(st.VerifiedChains) == 0 {
			a.logins.warn("nats-no-cert", "refused NATS connection without a client certificate (--tls-verify-clients)", "user", o.Username, "remote", addrString(c.RemoteAddress()))
			return false
		}
	}
	if o.Username != "" {
		return a.checkPassword(c, o.Username, o.Password)
	}
	if !a.require && isLoopbackAddr(c.RemoteAddress()) {
		if uid, app := a.fromAppUser(c.RemoteAddress(), a.natsPort()); app {
			a.logins.warn("nats-app-user", "refused NATS connection without credentials from an app's user: apps connect with their NATS_TOKEN", "uid", uid, "remote", addrString(c.RemoteAddress()))
			return false
		}
		a.register(c, "", o.Name)
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
		a.register(c, user, c.GetOpts().Name)
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

// apiConnName names the broker's own connection that serves the control API:
// it may subscribe to the API's subjects and publish only replies.
const apiConnName = "dartup-control-api"

// register admits a client with the full rights of user, or with fewer when
// its connection name asks for a restricted role (see rolePermissions). A
// connection can only give rights up this way, never gain any. An anonymous
// local client without a role is admitted as before, with no user record.
func (a *authenticator) register(c server.ClientAuthentication, user, connName string) {
	perms := a.rolePermissions(connName)
	if perms == nil && user == "" {
		return
	}
	if user == "" {
		user = "local"
	}
	c.RegisterUser(&server.User{Username: user, Permissions: perms})
}

// rolePermissions returns the permissions of a connection whose name asks
// for a restricted role, or nil (full rights):
//   - clientsdk.ReplyConnName…: publish replies only, subscribe to nothing;
//   - apiConnName: publish replies only, subscribe to the control API and
//     the micro service's discovery subjects.
//
// Replies are "_INBOX.>", "_INBOX_APP.>" and the configured reply prefixes.
func (a *authenticator) rolePermissions(connName string) *server.Permissions {
	pub := &server.SubjectPermission{Allow: clientsdk.ReplyPublishPermissions(a.replyPrefixes...)}
	switch {
	case strings.HasPrefix(connName, clientsdk.ReplyConnName):
		return &server.Permissions{Publish: pub, Subscribe: &server.SubjectPermission{Deny: []string{">"}}}
	case connName == apiConnName:
		return &server.Permissions{Publish: pub, Subscribe: &server.SubjectPermission{
			Allow: []string{clientsdk.APIPrefix + ".>", "$SRV.>"}}}
	}
	return nil
}

// fromAppUser reports whether a local TCP client runs as one of the apps'
// users (Config.AppUser). A client whose user cannot be found out counts as
// an app's: the local exemption is only for clients known not to be one.
// In-process clients (nil address) are dartup itself.
func (a *authenticator) fromAppUser(addr net.Addr, serverPort int) (uint32, bool) {
	if a.appUser == nil || addr == nil {
		return 0, false
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return 0, true
	}
	uid, known := localSocketOwner(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), uint16(serverPort))
	return uid, !known || a.appUser(uid)
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
