package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

func statusOf(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSelfSignedTLS: with TLSConfig.SelfSigned the NATS port and the
// gateway speak only TLS with a certificate from the CA in DATA/tls: clients
// that trust it connect (NATS and HTTPS), clients that do not are refused
// with a certificate error, and plain HTTP gets no answer from the gateway.
func TestSelfSignedTLS(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t, func(c *broker.Config) { c.TLS.SelfSigned = true })
	if !strings.HasPrefix(b.NATSURL(), "tls://127.0.0.1:") || !strings.HasPrefix(b.HTTPURL(), "https://127.0.0.1:") || b.WorkerURL() != b.NATSURL() {
		t.Fatalf("URLs: NATS %s, HTTP %s, workers %s", b.NATSURL(), b.HTTPURL(), b.WorkerURL())
	}
	ca := b.SelfSignedCA()
	if ca == "" {
		t.Fatal("no self-signed CA")
	}
	if err := natsConnect(b.NATSURL(), nats.RootCAs(ca)); err != nil {
		t.Errorf("NATS with the CA: %v", err)
	}
	var uae x509.UnknownAuthorityError
	for _, url := range []string{b.NATSURL(), strings.Replace(b.NATSURL(), "tls://", "nats://", 1)} {
		err := natsConnect(url)
		if !errors.Is(err, nats.ErrTLS) || !errors.As(err, &uae) {
			t.Errorf("NATS %s without the CA: %v, want an unknown-authority TLS error", url, err)
		}
	}
	hc := testutil.HTTPSClient(t, ca, "", "")
	if c := statusOf(t, hc, b.HTTPURL()+"/healthz"); c != 200 {
		t.Errorf("HTTPS /healthz = %d", c)
	}
	if c := statusOf(t, hc, b.HTTPURL()+"/nosuchlambda"); c != 404 {
		t.Errorf("HTTPS /nosuchlambda from loopback = %d, want 404", c)
	}
	if _, err := http.Get(b.HTTPURL() + "/healthz"); !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("HTTPS without the CA: %v, want a certificate verification error", err)
	}
	if c := statusOf(t, http.DefaultClient, strings.Replace(b.HTTPURL(), "https://", "http://", 1)+"/healthz"); c != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS gateway = %d, want 400", c)
	}
}

// TestVerifyClients: with TLSConfig.VerifyClients a NATS client needs a
// certificate from the client CA (without one, or with another CA's, it is
// refused at authentication), except a worker with its scoped token; an
// HTTP request needs one too (403), except /healthz.
func TestVerifyClients(t *testing.T) {
	t.Parallel()
	pki := testutil.NewPKI(t, "dartup test CA")
	serverCert, serverKey := pki.Issue(t, "server", "127.0.0.1", "localhost")
	clientCert, clientKey := pki.Issue(t, "alice")
	other := testutil.NewPKI(t, "other CA")
	otherCert, otherKey := other.Issue(t, "mallory")
	var logs testutil.SyncBuffer
	b := testutil.StartBroker(t, captureLogs(&logs), func(c *broker.Config) {
		c.TLS = broker.TLSConfig{CertFile: serverCert, KeyFile: serverKey, CAFile: pki.CAFile, VerifyClients: true}
	})
	ca := nats.RootCAs(pki.CAFile)
	if err := natsConnect(b.NATSURL(), ca); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("NATS without a client certificate: %v, want an authorization error", err)
	}
	if !strings.Contains(logs.String(), "without a client certificate") {
		t.Error("the refusal is not logged")
	}
	// Go's TLS client does not even send a certificate the server's CA list
	// does not name, so this is refused like no certificate at all.
	if err := natsConnect(b.NATSURL(), ca, nats.ClientCert(otherCert, otherKey)); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("NATS with another CA's client certificate: %v, want an authorization error", err)
	}
	nc := testutil.Connect(t, b.NATSURL(), ca, nats.ClientCert(clientCert, clientKey))
	token := tokenFor(t, nc, "app1")
	if err := natsConnect(b.NATSURL(), ca, nats.Token(token)); err != nil {
		t.Errorf("a worker with its token and no client certificate: %v", err)
	}

	noCert := testutil.HTTPSClient(t, pki.CAFile, "", "")
	if c := statusOf(t, noCert, b.HTTPURL()+"/healthz"); c != 200 {
		t.Errorf("HTTPS /healthz without a client certificate = %d, want 200", c)
	}
	if c := statusOf(t, noCert, b.HTTPURL()+"/x"); c != http.StatusForbidden {
		t.Errorf("HTTPS /x without a client certificate = %d, want 403", c)
	}
	if c := statusOf(t, testutil.HTTPSClient(t, pki.CAFile, clientCert, clientKey), b.HTTPURL()+"/x"); c != 404 {
		t.Errorf("HTTPS /x with a client certificate = %d, want 404", c)
	}
}
