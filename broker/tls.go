package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// TLSConfig says where `dartup serve` finds its certificates. The zero value
// is no TLS anywhere, as before TLS existed.
type TLSConfig struct {
	// CertFile and KeyFile are the PEM server certificate and key of the NATS
	// client port and the HTTP gateway, and of the cluster routes unless
	// ClusterCertFile is set.
	CertFile, KeyFile string
	// CAFile is a PEM bundle of CAs: VerifyClients accepts client
	// certificates from them; route peers are verified against it unless
	// ClusterCAFile is set or the certificates are self-signed; and this
	// server's workers get it to verify the server (see Broker.WorkerCA).
	CAFile string
	// VerifyClients requires a certificate signed by CAFile from every TCP
	// client: NATS clients (except workers, which present their app's scoped
	// token and are given no certificate) and HTTP requests (except /healthz).
	VerifyClients bool
	// SelfSigned makes a CA and a server certificate in DATA/tls on the first
	// start and reuses them on later ones (see Broker.SelfSignedCA).
	SelfSigned bool
	// ClusterCertFile and ClusterKeyFile are the routes' own certificate and
	// key (it must allow client authentication too: routes dial each other);
	// ClusterCAFile verifies the other servers' route certificates.
	ClusterCertFile, ClusterKeyFile, ClusterCAFile string
}

// Enabled reports whether the NATS client port and the gateway use TLS.
func (t TLSConfig) Enabled() bool { return t.SelfSigned || t.CertFile != "" }

// routes reports whether cluster routes use TLS.
func (t TLSConfig) routes() bool { return t.Enabled() || t.ClusterCertFile != "" }

// check validates that the flags go together; it reads no file.
func (t TLSConfig) check(cluster bool) error {
	switch {
	case (t.CertFile == "") != (t.KeyFile == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case (t.ClusterCertFile == "") != (t.ClusterKeyFile == ""):
		return errors.New("--cluster-tls-cert and --cluster-tls-key go together")
	case t.SelfSigned && t.CertFile != "":
		return errors.New("--tls-self-signed makes its own certificate: drop --tls-cert and --tls-key, or --tls-self-signed")
	case t.VerifyClients && t.CAFile == "":
		return errors.New("--tls-verify-clients needs --tls-ca: the CA that signs the client certificates")
	case t.VerifyClients && !t.Enabled():
		return errors.New("--tls-verify-clients needs TLS: add --tls-cert and --tls-key, or --tls-self-signed")
	case t.CAFile != "" && !t.routes():
		return errors.New("--tls-ca needs TLS: add --tls-cert and --tls-key, or --tls-self-signed")
	case t.ClusterCAFile != "" && !t.routes():
		return errors.New("--cluster-tls-ca needs TLS on routes: add --cluster-tls-cert and --cluster-tls-key (or --tls-cert/--tls-key, or --tls-self-signed)")
	case cluster && t.routes() && t.ClusterCAFile == "" && t.CAFile == "" && !t.SelfSigned:
		return errors.New("TLS routes verify each other's certificates: add --cluster-tls-ca (or --tls-ca) with the CA that signs them")
	case !cluster && t.ClusterCertFile != "":
		return errors.New("--cluster-tls-cert needs --cluster-addr")
	}
	return nil
}

// tlsSetup is the TLS of a running broker, resolved from TLSConfig.
type tlsSetup struct {
	clients *tls.Config // NATS client port and HTTP gateway; nil without TLS
	routes  *tls.Config // cluster routes; nil without route TLS
	leaf    *x509.Certificate
	// selfSignedCA is DATA/tls/ca.pem with --tls-self-signed, else "".
	selfSignedCA string
	// created lists what --tls-self-signed wrote at this start.
	created []string
}

// resolveTLS loads (or, with SelfSigned, makes) the certificates of cfg.
func resolveTLS(cfg *Config) (*tlsSetup, error) {
	t := cfg.TLS
	s := &tlsSetup{}
	if !t.routes() {
		return s, nil
	}
	certFile, keyFile, caFile := t.CertFile, t.KeyFile, t.CAFile
	if t.SelfSigned {
		ss, err := ensureSelfSigned(filepath.Join(cfg.DataDir, TLSDirName), selfSignedHosts(cfg.listenHosts()), time.Now())
		if err != nil {
			return nil, err
		}
		certFile, keyFile, s.selfSignedCA, s.created = ss.certFile, ss.keyFile, ss.caFile, ss.created
	}
	if t.Enabled() {
		cert, err := loadKeyPair(certFile, keyFile, "--tls-cert/--tls-key")
		if err != nil {
			return nil, err
		}
		s.leaf = cert.Leaf
		s.clients = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if t.VerifyClients {
			pool, err := loadCAs(t.CAFile, "--tls-ca")
			if err != nil {
				return nil, err
			}
			// Verified when given; the authenticator and the gateway refuse
			// clients without one (workers with their scoped token excepted).
			s.clients.ClientCAs, s.clients.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
	}
	if cfg.ClusterAddr == "" {
		return s, nil
	}
	rc, err := routeTLS(t, certFile, keyFile, caFile, s.selfSignedCA)
	if err != nil {
		return nil, err
	}
	s.routes = rc
	return s, nil
}

// routeTLS is mutual TLS for routes: each server presents its certificate
// and verifies the other's against the cluster CA, both when it dials and
// when it accepts.
func routeTLS(t TLSConfig, certFile, keyFile, caFile, selfSignedCA string) (*tls.Config, error) {
	what := "--tls-cert/--tls-key"
	if t.ClusterCertFile != "" {
		certFile, keyFile, what = t.ClusterCertFile, t.ClusterKeyFile, "--cluster-tls-cert/--cluster-tls-key"
	}
	cert, err := loadKeyPair(certFile, keyFile, what)
	if err != nil {
		return nil, err
	}
	if eku := cert.Leaf.ExtKeyUsage; len(eku) > 0 && !slices.Contains(eku, x509.ExtKeyUsageClientAuth) && !slices.Contains(eku, x509.ExtKeyUsageAny) {
		return nil, fmt.Errorf("the route certificate (%s) does not allow client authentication, which routes need since they dial each other; give one with both serverAuth and clientAuth as --cluster-tls-cert/--cluster-tls-key", what)
	}
	ca, caWhat := t.ClusterCAFile, "--cluster-tls-ca"
	switch {
	case ca != "":
	case selfSignedCA != "" && t.ClusterCertFile == "":
		ca, caWhat = selfSignedCA, "the self-signed CA"
	default:
		ca, caWhat = caFile, "--tls-ca"
	}
	pool, err := loadCAs(ca, caWhat)
	if err != nil {
		return nil, err
	}
	// The other servers' certificates come from the same CA as ours: if ours
	// does not verify, theirs will not either, and every route would fail.
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the route certificate (%s) is not signed by the route CA (%s): %w; give the CA that signs the servers' certificates as --cluster-tls-ca", what, caWhat, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// loadKeyPair loads a PEM certificate and key, with the leaf parsed.
func loadKeyPair(certFile, keyFile, what string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return cert, fmt.Errorf("TLS certificate (%s): %w", what, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return cert, fmt.Errorf("TLS certificate (%s): %w", what, err)
		}
	}
	if time.Now().After(cert.Leaf.NotAfter) {
		return cert, fmt.Errorf("TLS certificate %s (%s) expired on %s", certFile, what, cert.Leaf.NotAfter.Format(time.DateOnly))
	}
	return cert, nil
}

// loadCAs reads a PEM bundle of CA certificates.
func loadCAs(file, what string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("TLS CA (%s): %w", what, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("TLS CA %s (%s) holds no PEM certificate", file, what)
	}
	return pool, nil
}

// listenHosts returns the hosts of the configured listeners.
func (c *Config) listenHosts() []string {
	var hosts []string
	for _, a := range []string{c.NATSAddr, c.HTTPAddr, c.ClusterAddr} {
		if h, _, err := net.SplitHostPort(a); err == nil {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// writeAtomic writes data to a temporary file next to path with mode, syncs
// it, renames it into place and syncs the folder: after a crash the file
// holds the old content or the new one, whole.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
