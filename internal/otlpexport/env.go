package otlpexport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one export, retries included, unless
// OTEL_EXPORTER_OTLP_TIMEOUT says otherwise.
const DefaultTimeout = 10 * time.Second

// Bounds on what the environment may hold.
const (
	maxTimeout     = 10 * time.Minute
	maxHeadersLen  = 16 << 10 // bytes of OTEL_EXPORTER_OTLP_HEADERS
	maxHeaders     = 64
	maxPEMFileSize = 1 << 20
)

// settings is what the OTEL_EXPORTER_OTLP_* environment says.
type settings struct {
	headers [][2]string
	// headersVar is the variable the headers came from.
	headersVar string
	// skipped names the header entries that were not taken.
	skipped []string
	timeout time.Duration
	gzip    bool
	tls     *tls.Config
}

// envVar is one variable's name and value: the trace-specific
// OTEL_EXPORTER_OTLP_TRACES_<suffix> when set, else OTEL_EXPORTER_OTLP_<suffix>.
func envVar(getenv func(string) string, suffix string) (name, value string) {
	name = "OTEL_EXPORTER_OTLP_TRACES_" + suffix
	if v := getenv(name); v != "" {
		return name, v
	}
	name = "OTEL_EXPORTER_OTLP_" + suffix
	return name, getenv(name)
}

// readSettings reads the exporter's environment (OTEL_EXPORTER_OTLP_ENDPOINT
// is not read: --otlp-endpoint wins).
func readSettings(getenv func(string) string) (settings, error) {
	var s settings
	var err error
	var hv string
	s.headersVar, hv = envVar(getenv, "HEADERS")
	if s.headers, s.skipped, err = parseHeaders(s.headersVar, hv); err != nil {
		return s, err
	}
	if s.timeout, err = parseTimeout(envVar(getenv, "TIMEOUT")); err != nil {
		return s, err
	}
	if s.gzip, err = parseCompression(envVar(getenv, "COMPRESSION")); err != nil {
		return s, err
	}
	s.tls, err = tlsConfig(getenv)
	return s, err
}

// parseHeaders reads a W3C-baggage-like list "k=v,k2=v2" whose values are
// URL-decoded. An entry without "=", with a key that is not an HTTP token
// or a value that does not decode is skipped (and named in skipped, by
// its place, never its text); a value holding a control
// character (CR, LF, …) or a list over the bounds is an error.
func parseHeaders(name, v string) (h [][2]string, skipped []string, err error) {
	if len(v) > maxHeadersLen {
		return nil, nil, fmt.Errorf("%s is %d bytes long, over %d", name, len(v), maxHeadersLen)
	}
	for i, entry := range strings.Split(v, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		k, val, ok := strings.Cut(entry, "=")
		k = strings.TrimSpace(k)
		dec, derr := url.PathUnescape(val)
		if why := badEntry(ok, isToken(k), derr); why != "" {
			skipped = append(skipped, fmt.Sprintf("entry %d: %s", i+1, why))
			continue
		}
		if strings.ContainsFunc(dec, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			return nil, nil, fmt.Errorf("%s: the value of header %q holds a control character (CR, LF, …): remove it", name, k)
		}
		dec = strings.TrimSpace(dec)
		if len(h) == maxHeaders {
			return nil, nil, fmt.Errorf("%s has over %d headers", name, maxHeaders)
		}
		h = append(h, [2]string{k, dec})
	}
	return h, skipped, nil
}

// badEntry says why a header entry is skipped ("" if it is not). It never
// repeats the entry: a mistyped "Authorization: Bearer …" holds a secret.
func badEntry(hasEq, keyOK bool, decodeErr error) string {
	switch {
	case !hasEq:
		return "no '='"
	case !keyOK:
		return "the key is not a header name"
	case decodeErr != nil:
		return "the value is not URL-encoded right (a % not followed by two hex digits)"
	}
	return ""
}

// isToken reports whether s is an HTTP header name (RFC 9110 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// parseTimeout reads a timeout in milliseconds (DefaultTimeout if unset).
func parseTimeout(name, v string) (time.Duration, error) {
	if v == "" {
		return DefaultTimeout, nil
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || ms < 1 || ms > maxTimeout.Milliseconds() {
		return 0, fmt.Errorf("%s=%.40q is not a number of milliseconds from 1 to %d (e.g. 10000)", name, v, maxTimeout.Milliseconds())
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// parseCompression reads "gzip" or "none" (or nothing: none).
func parseCompression(name, v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "none":
		return false, nil
	case "gzip":
		return true, nil
	}
	return false, fmt.Errorf("%s=%.40q: the compression must be gzip or none", name, v)
}

// tlsConfig reads the CA and client certificate variables; nil when none
// is set (the system's roots are used).
func tlsConfig(getenv func(string) string) (*tls.Config, error) {
	caName, caFile := envVar(getenv, "CERTIFICATE")
	certName, certFile := envVar(getenv, "CLIENT_CERTIFICATE")
	keyName, keyFile := envVar(getenv, "CLIENT_KEY")
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := readPEM(caName, caFile)
		if err != nil {
			return nil, err
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s=%s holds no PEM certificate: give the CA certificate that signed the collector's", caName, caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%s and %s go together: set both (a client certificate and its key, PEM) or neither", certName, keyName)
	}
	if certFile != "" {
		cert, err := loadKeyPair(certName, certFile, keyName, keyFile)
		if err != nil {
			return nil, err
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// loadKeyPair reads a client certificate and its key.
func loadKeyPair(certName, certFile, keyName, keyFile string) (tls.Certificate, error) {
	certPEM, err := readPEM(certName, certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readPEM(keyName, keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s=%s and %s=%s are not a certificate and its key (PEM): %w", certName, certFile, keyName, keyFile, err)
	}
	return cert, nil
}

// readPEM reads a file named by variable name, bounded in size.
func readPEM(name, file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w: give a readable PEM file", name, file, err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", name, file, err)
	}
	if len(b) > maxPEMFileSize {
		return nil, fmt.Errorf("%s=%s is over %d bytes: give a PEM file", name, file, maxPEMFileSize)
	}
	return b, nil
}
