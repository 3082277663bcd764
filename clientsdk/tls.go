package clientsdk

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	neturl "net/url"
	"strings"

	"github.com/nats-io/nats.go"
)

// ErrPlaintextPassword is returned by Connect when it would have to send a
// password or token to a server that is not on loopback without TLS.
var ErrPlaintextPassword = errors.New("refusing to send a password without TLS")

// ErrUntrustedServer is returned by Connect when the server's TLS certificate
// does not verify: an unknown CA (give it with WithTLS) or a certificate
// that does not name the host in the URL.
var ErrUntrustedServer = errors.New("the server's TLS certificate is not trusted")

// WithTLS makes the connection use TLS: it verifies the server against the
// CA certificates in the PEM file caFile ("" for the system's CAs) and, when
// certFile is not "", presents that client certificate with keyFile (for a
// server that verifies clients). Without WithTLS, a tls:// URL or a server
// that requires TLS still gets TLS, verified against the system's CAs.
func WithTLS(caFile, certFile, keyFile string) Option {
	return func(c *connectConfig) error {
		if (certFile == "") != (keyFile == "") {
			return errors.New("clientsdk: a client certificate needs its key, and a key its certificate")
		}
		c.caFile, c.certFile, c.keyFile, c.tls = caFile, certFile, keyFile, true
		return nil
	}
}

// WithPlaintextPassword allows sending a password or token to a server that
// is not on loopback over a connection without TLS, for networks that
// something else protects (a VPN, an encrypted overlay). Without it, Connect
// requires TLS for such a connection and fails with ErrPlaintextPassword
// against a server that offers none.
func WithPlaintextPassword() Option {
	return func(c *connectConfig) error { c.plaintextPassword = true; return nil }
}

// tlsOptions are the nats.go options of WithTLS.
func (c *connectConfig) tlsOptions() []nats.Option {
	if !c.tls {
		return nil
	}
	opts := []nats.Option{nats.Secure()}
	if c.caFile != "" {
		opts = append(opts, nats.RootCAs(c.caFile))
	}
	if c.certFile != "" {
		opts = append(opts, nats.ClientCert(c.certFile, c.keyFile))
	}
	return opts
}

// guardPassword makes TLS mandatory when o carries a password or token and
// a server URL is neither loopback nor tls://, so that the secret never
// crosses the network in clear; nats.go then fails with
// nats.ErrSecureConnWanted against a server without TLS. It reports whether
// it did. Dialing an unspecified address (0.0.0.0) reaches this machine, so
// it counts as loopback.
func guardPassword(o *nats.Options, allowPlaintext bool) bool {
	if allowPlaintext || o.Secure || !hasSecret(o) {
		return false
	}
	for _, s := range o.Servers {
		if u, err := parseServerURL(s); err != nil || (u.Scheme != "tls" && !isLoopbackHost(u.Hostname())) {
			o.Secure = true
			return true
		}
	}
	return false
}

// hasSecret reports whether the options send a password or token.
func hasSecret(o *nats.Options) bool {
	if o.Password != "" || o.Token != "" || o.TokenHandler != nil {
		return true
	}
	for _, s := range o.Servers {
		if u, err := parseServerURL(s); err == nil && u.User != nil {
			return true
		}
	}
	return false
}

func parseServerURL(s string) (*neturl.URL, error) {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	return neturl.Parse(s)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && (ip.Unmap().IsLoopback() || ip.IsUnspecified())
}

// hasClientCert reports whether o presents a client certificate.
func hasClientCert(o *nats.Options) bool {
	return o.TLSCertCB != nil || (o.TLSConfig != nil && (len(o.TLSConfig.Certificates) > 0 || o.TLSConfig.GetClientCertificate != nil))
}

// tlsError explains a failed TLS connection, or returns nil when err is not one.
func tlsError(err error, url string, guarded bool) error {
	var cve *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	switch {
	case guarded && errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("%w: the server at %s is not on loopback and offers no TLS; start it with TLS (--tls-cert/--tls-key or --tls-self-signed), or pass --insecure if something else protects the network", ErrPlaintextPassword, url)
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("the server at %s offers no TLS, and this client requires it (--tls-ca, --tls-cert or a tls:// URL): %w", url, err)
	case errors.As(err, &hostErr):
		return fmt.Errorf("%w: %v; connect with a name the certificate carries", ErrUntrustedServer, err)
	case errors.As(err, &cve):
		return fmt.Errorf("%w: %s: %v; pass the CA that signed it with --tls-ca (or env DARTUP_TLS_CA); `dartup serve --tls-self-signed` prints where its CA is", ErrUntrustedServer, url, cve.Err)
	}
	return nil
}
