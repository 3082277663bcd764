package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Names of the files `dartup serve --tls-self-signed` keeps in DATA/tls.
const (
	TLSDirName        = "tls"
	SelfSignedCAFile  = "ca.pem"
	selfSignedCAKey   = "ca-key.pem"
	selfSignedCert    = "server.pem"
	selfSignedCertKey = "server-key.pem"
)

// Lifetimes of the self-signed certificates, and how long before expiry a
// start replaces them.
const (
	selfSignedCAValidity     = 10 * 365 * 24 * time.Hour
	selfSignedServerValidity = 365 * 24 * time.Hour
	selfSignedRenewBefore    = 30 * 24 * time.Hour
)

// selfSigned is where the files of a self-signed set-up are.
type selfSigned struct {
	caFile, certFile, keyFile string
	// created lists what this start wrote ("CA", "server certificate").
	created []string
}

// ensureSelfSigned makes, or reuses, a CA and a server certificate for hosts
// in dir. The CA is reused while it has more than selfSignedRenewBefore to
// live (so that clients keep trusting the same file); the server certificate
// while it was issued by that CA, names every host and has as long to live.
// A CA copied into dir from another server (ca.pem and ca-key.pem) is used as
// is, so several servers can share one CA.
func ensureSelfSigned(dir string, hosts []string, now time.Time) (selfSigned, error) {
	s := selfSigned{
		caFile:   filepath.Join(dir, SelfSignedCAFile),
		certFile: filepath.Join(dir, selfSignedCert),
		keyFile:  filepath.Join(dir, selfSignedCertKey),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return s, fmt.Errorf("self-signed TLS: %w", err)
	}
	ca, caKey, err := loadPair(s.caFile, filepath.Join(dir, selfSignedCAKey))
	if _, statErr := os.Stat(s.caFile); err != nil && statErr == nil {
		// A CA is there but cannot be used (no key, a key of another CA, a
		// damaged file): replacing it would break every client and server
		// that trusts it, so say so instead.
		return s, fmt.Errorf("self-signed TLS: %s cannot be used (%v): copy its %s too, or remove %s to make a new CA (clients then need the new one)",
			s.caFile, err, selfSignedCAKey, s.caFile)
	}
	if err != nil || !ca.IsCA || now.Add(selfSignedRenewBefore).After(ca.NotAfter) {
		if ca, caKey, err = newCA(now); err != nil {
			return s, err
		}
		if err := writePair(s.caFile, filepath.Join(dir, selfSignedCAKey), ca.Raw, caKey); err != nil {
			return s, err
		}
		s.created = append(s.created, "CA")
	}
	leaf, _, err := loadPair(s.certFile, s.keyFile)
	if err == nil && serverCertFits(leaf, ca, hosts, now) {
		return s, nil
	}
	der, key, err := newServerCert(ca, caKey, hosts, now)
	if err != nil {
		return s, err
	}
	if err := writePair(s.certFile, s.keyFile, der, key); err != nil {
		return s, err
	}
	s.created = append(s.created, "server certificate")
	return s, nil
}

// serverCertFits reports whether leaf was signed by ca, is valid for
// selfSignedRenewBefore more, and names every host.
func serverCertFits(leaf, ca *x509.Certificate, hosts []string, now time.Time) bool {
	if leaf.CheckSignatureFrom(ca) != nil || now.Add(selfSignedRenewBefore).After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "dartup self-signed CA " + host, Organization: []string{"dartup"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed TLS: create CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// newServerCert issues a certificate for hosts (IP addresses or DNS names),
// good for servers and, because routes dial each other, for clients too.
func newServerCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "dartup " + host, Organization: []string{"dartup"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(selfSignedServerValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("self-signed TLS: create server certificate: %w", err)
	}
	return der, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// loadPair reads a PEM certificate and its ECDSA key and checks they match.
func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	cblock, _ := pem.Decode(cb)
	kblock, _ := pem.Decode(kb)
	if cblock == nil || kblock == nil {
		return nil, nil, errors.New("not PEM")
	}
	cert, err := x509.ParseCertificate(cblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kblock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("key does not match certificate")
	}
	return cert, key, nil
}

// writePair writes a certificate (0644: it is public) and its key (0600),
// each atomically, so that a crash never leaves half a file.
func writePair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return fmt.Errorf("self-signed TLS: %w", err)
	}
	if err := writeAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("self-signed TLS: %w", err)
	}
	return nil
}

// selfSignedHosts are the names a self-signed server certificate carries: the
// listen hosts (for an unspecified host such as 0.0.0.0, every address of
// this machine's interfaces), localhost, 127.0.0.1, ::1 and the host name.
func selfSignedHosts(listenHosts []string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	for _, h := range listenHosts {
		ip, err := netip.ParseAddr(h)
		switch {
		case h == "" || (err == nil && ip.IsUnspecified()):
			hosts = append(hosts, interfaceAddrs()...)
		case err == nil:
			hosts = append(hosts, ip.Unmap().String())
		default:
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// interfaceAddrs returns this machine's unicast interface addresses, without
// link-local ones (they need a zone and nobody dials them).
func interfaceAddrs() []string {
	addrs, _ := net.InterfaceAddrs()
	var out []string
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, ip.String())
	}
	return out
}
