package clientsdk

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// MaxRequestIDLength bounds a request id given by a caller
// (HeaderRequestID): AWS's are 36 characters.
const MaxRequestIDLength = 64

// NewRequestID returns a random request id shaped like AWS's: a version 4
// UUID, e.g. "8f2b6c1e-3d4a-4f5b-9c6d-7e8f9a0b1c2d".
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	return uuidOf(b)
}

// DerivedRequestID returns a request id computed from seed: the same seed
// gives the same id (a version 8 UUID from its SHA-256). dartup derives the
// id of an async event stored without one from the event's place in the
// stream, so that it is the same on every attempt.
func DerivedRequestID(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = b[6]&0x0f | 0x80
	return uuidOf(b)
}

// uuidOf formats b as a UUID of the RFC 9562 variant (the caller sets the
// version nibble).
func uuidOf(b [16]byte) string {
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ValidRequestID reports whether id may be used as an invocation's request
// id: 1 to MaxRequestIDLength letters, digits, '-', '_' and '.', not only
// dots. It travels in the Runtime API's URL paths and headers
// (Lambda-Runtime-Aws-Request-Id), so nothing there needs escaping.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLength {
		return false
	}
	dots := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return dots < len(id)
}
