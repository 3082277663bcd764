package otlpexport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxSnippet bounds how much of a collector's answer goes in an error.
const maxSnippet = 256

// retryableStatus reports whether an HTTP status is worth a retry (as the
// OTLP/HTTP specification and the SDK's exporter say).
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryableTransport reports whether a failed request (no response) is
// worth a retry: a refused or reset connection is, a certificate the
// collector's TLS does not accept or a cancelled context is not.
func retryableTransport(err error) bool {
	var (
		unknownCA  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		invalid    x509.CertificateInvalidError
		verify     *tls.CertificateVerificationError
		recordHdr  tls.RecordHeaderError
		alertError tls.AlertError
		op         *net.OpError
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verify), errors.As(err, &recordHdr), errors.As(err, &alertError):
		return false
	case errors.As(err, &op) && op.Op == "remote error":
		return false // a TLS alert from the collector (e.g. a client certificate it wants)
	}
	return true
}

// backoff is the wait before retry attempt+1: first doubled attempt times,
// at most maxBackoff, jittered down to between half and all of it by r
// (from 0 to 1).
func backoff(first time.Duration, attempt int, r float64) time.Duration {
	d := first << min(attempt, 20)
	d = min(d, maxBackoff)
	return d/2 + time.Duration(float64(d/2)*r)
}

// randFloat is a jitter from 0 to 1.
func randFloat() float64 { return rand.Float64() }

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date
// (relative to now). A value it cannot read, or one in the past, is 0.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, 24*3600)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), 24*time.Hour), true
}

// snippet is the start of a collector's answer, fit for an error message:
// at most maxSnippet bytes, quoted (control characters escaped).
func snippet(data []byte) string {
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "(empty answer)"
	}
	if len(s) > maxSnippet {
		cut := maxSnippet
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}

// partialSuccess reads an ExportTraceServiceResponse (protobuf) and
// returns an error if the collector says it rejected spans. Another
// content type, or an empty answer, is a success.
func partialSuccess(contentType string, data []byte) error {
	if len(data) == 0 || !strings.HasPrefix(contentType, "application/x-protobuf") {
		return nil
	}
	ps, ok := field(data, 1) // ExportTraceServiceResponse.partial_success
	if !ok {
		return nil
	}
	var rejected int64
	var msg string
	for len(ps) > 0 {
		num, typ, n := protowire.ConsumeTag(ps)
		if n < 0 {
			return nil
		}
		ps = ps[n:]
		switch {
		case num == 1 && typ == protowire.VarintType: // rejected_spans
			v, m := protowire.ConsumeVarint(ps)
			rejected, n = int64(v), m
		case num == 2 && typ == protowire.BytesType: // error_message
			v, m := protowire.ConsumeBytes(ps)
			msg, n = string(v), m
		default:
			n = protowire.ConsumeFieldValue(num, typ, ps)
		}
		if n < 0 {
			return nil
		}
		ps = ps[n:]
	}
	if rejected == 0 && msg == "" {
		return nil
	}
	return fmt.Errorf("OTLP collector rejected %d spans: %s", rejected, snippet([]byte(msg)))
}

// field returns the last bytes field num of a message.
func field(msg []byte, want protowire.Number) ([]byte, bool) {
	var out []byte
	var found bool
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, false
		}
		msg = msg[n:]
		if num == want && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(msg)
			if m < 0 {
				return nil, false
			}
			out, found, msg = v, true, msg[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, msg)
		if m < 0 {
			return nil, false
		}
		msg = msg[m:]
	}
	return out, found
}
