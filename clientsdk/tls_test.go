package clientsdk_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// lanIP returns a non-loopback IPv4 address of this machine, or skips.
func lanIP(t *testing.T) string {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("SKIPPED: this machine has no non-loopback IPv4 address")
	return ""
}

func onHost(url, host string) string {
	i := strings.LastIndexByte(url, ':')
	scheme, _, _ := strings.Cut(url, "://")
	return scheme + "://" + net.JoinHostPort(host, url[i+1:])
}

func connectErr(opts ...clientsdk.Option) error {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := clientsdk.Connect(ctx, opts...)
	if err == nil {
		_, err = c.Info(ctx)
		c.Close()
	}
	return err
}

// TestConnectTLS: Connect verifies a TLS server with WithTLS's CA (and names
// ErrUntrustedServer without it), and never sends a password to a server off
// loopback in clear: against one without TLS it fails with
// ErrPlaintextPassword unless WithPlaintextPassword.
func TestConnectTLS(t *testing.T) {
	t.Parallel()
	ip := lanIP(t)
	const pw = "tls-test-pw-3e81"
	tlsB := testutil.StartBroker(t, func(c *broker.Config) {
		c.NATSAddr, c.HTTPAddr, c.RequirePassword, c.TLS.SelfSigned = "0.0.0.0:0", "", true, true
	})
	plainB := testutil.StartBroker(t, func(c *broker.Config) {
		c.NATSAddr, c.HTTPAddr, c.RequirePassword, c.Insecure = "0.0.0.0:0", "", true, true
	})
	for _, b := range []*broker.Broker{tlsB, plainB} {
		if err := broker.SetPassword(b.DataDir()+"/"+broker.PasswordFileName, "alice", pw); err != nil {
			t.Fatal(err)
		}
	}
	alice := clientsdk.WithUserPassword("alice", pw)
	ca := tlsB.SelfSignedCA()
	other := testutil.NewPKI(t, "other CA")
	tlsURL, plainURL := onHost(tlsB.NATSURL(), ip), onHost(plainB.NATSURL(), ip)
	cases := []struct {
		name string
		opts []clientsdk.Option
		want error // nil: connects
	}{
		{"TLS with the CA, by LAN address", []clientsdk.Option{clientsdk.WithURL(tlsURL), alice, clientsdk.WithTLS(ca, "", "")}, nil},
		{"TLS with the CA, nats:// URL", []clientsdk.Option{clientsdk.WithURL(strings.Replace(tlsURL, "tls://", "nats://", 1)), alice, clientsdk.WithTLS(ca, "", "")}, nil},
		{"TLS without the CA", []clientsdk.Option{clientsdk.WithURL(tlsURL), alice}, clientsdk.ErrUntrustedServer},
		{"TLS with another CA", []clientsdk.Option{clientsdk.WithURL(tlsURL), alice, clientsdk.WithTLS(other.CAFile, "", "")}, clientsdk.ErrUntrustedServer},
		{"password in clear to a LAN address", []clientsdk.Option{clientsdk.WithURL(plainURL), alice}, clientsdk.ErrPlaintextPassword},
		{"password in clear, allowed", []clientsdk.Option{clientsdk.WithURL(plainURL), alice, clientsdk.WithPlaintextPassword()}, nil},
		{"password in clear on loopback", []clientsdk.Option{clientsdk.WithURL(plainB.NATSURL()), alice}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := connectErr(tc.opts...)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Connect: %v, want %v", err, tc.want)
			}
		})
	}
}
