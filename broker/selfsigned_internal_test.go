package broker

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestEnsureSelfSigned: the first start makes a CA and a server certificate
// (keys 0600); later starts reuse both; a server certificate close to expiry,
// or missing a host, is replaced under the same CA; a CA close to expiry is
// replaced with its server certificate; a CA copied from another server is used.
func TestEnsureSelfSigned(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	hosts := []string{"127.0.0.1", "::1", "localhost", "node1.example"}
	now := time.Now()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s, err := ensureSelfSigned(dir, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.created, []string{"CA", "server certificate"}) {
		t.Errorf("first start created %v", s.created)
	}
	for _, k := range []string{selfSignedCAKey, selfSignedCertKey} {
		if st, err := os.Stat(filepath.Join(dir, k)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", k, err, st.Mode().Perm())
		}
	}
	leaf, _, err := loadPair(s.certFile, s.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("server certificate does not name %s: %v", h, err)
		}
	}
	ca, cert := read(SelfSignedCAFile), read(selfSignedCert)

	steps := []struct {
		name      string
		hosts     []string
		at        time.Time
		created   []string
		caChanged bool
	}{
		{"reused", hosts, now.Add(time.Hour), nil, false},
		{"server certificate near expiry", hosts, now.Add(selfSignedServerValidity - selfSignedRenewBefore + time.Hour), []string{"server certificate"}, false},
		{"a new listen host", append(hosts, "192.0.2.7"), now, []string{"server certificate"}, false},
		{"CA near expiry", hosts, now.Add(selfSignedCAValidity - selfSignedRenewBefore + time.Hour), []string{"CA", "server certificate"}, true},
	}
	for _, st := range steps {
		s, err := ensureSelfSigned(dir, st.hosts, st.at)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !slices.Equal(s.created, st.created) {
			t.Errorf("%s: created %v, want %v", st.name, s.created, st.created)
		}
		if changed := !bytes.Equal(ca, read(SelfSignedCAFile)); changed != st.caChanged {
			t.Errorf("%s: CA changed = %v", st.name, changed)
		}
		if changed := !bytes.Equal(cert, read(selfSignedCert)); changed != (st.created != nil) {
			t.Errorf("%s: server certificate changed = %v", st.name, changed)
		}
		ca, cert = read(SelfSignedCAFile), read(selfSignedCert)
	}

	// A second server given the first one's CA issues its own certificate from it.
	dir2 := filepath.Join(t.TempDir(), "tls")
	if err := os.MkdirAll(dir2, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{SelfSignedCAFile, selfSignedCAKey} {
		if err := os.WriteFile(filepath.Join(dir2, f), read(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := ensureSelfSigned(dir2, hosts, time.Now())
	if err != nil || !slices.Equal(s2.created, []string{"server certificate"}) {
		t.Fatalf("second server: %v, created %v", err, s2.created)
	}
	caCert, _, _ := loadPair(s.caFile, filepath.Join(dir, selfSignedCAKey))
	leaf2, _, _ := loadPair(s2.certFile, s2.keyFile)
	if err := leaf2.CheckSignatureFrom(caCert); err != nil {
		t.Errorf("second server's certificate is not from the shared CA: %v", err)
	}
}

func TestSelfSignedHosts(t *testing.T) {
	t.Parallel()
	got := selfSignedHosts([]string{"10.1.2.3", "::ffff:10.1.2.4", "dartup.example", "0.0.0.0"})
	for _, want := range []string{"localhost", "127.0.0.1", "::1", "10.1.2.3", "10.1.2.4", "dartup.example"} {
		if !slices.Contains(got, want) {
			t.Errorf("selfSignedHosts = %v, lacks %s", got, want)
		}
	}
	if slices.Contains(got, "0.0.0.0") {
		t.Errorf("selfSignedHosts = %v names the unspecified address", got)
	}
}
