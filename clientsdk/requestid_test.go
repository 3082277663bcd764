package clientsdk

import (
	"regexp"
	"strings"
	"testing"
)

func TestRequestIDs(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-([48])[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := NewRequestID(), NewRequestID()
	if a == b || uuid.FindStringSubmatch(a)[1] != "4" || !ValidRequestID(a) {
		t.Fatalf("NewRequestID: %q, %q", a, b)
	}
	d1, d2, d3 := DerivedRequestID("DARTUP_ASYNC/7"), DerivedRequestID("DARTUP_ASYNC/7"), DerivedRequestID("DARTUP_ASYNC/8")
	if d1 != d2 || d1 == d3 || uuid.FindStringSubmatch(d1)[1] != "8" || !ValidRequestID(d1) {
		t.Fatalf("DerivedRequestID: %q %q %q", d1, d2, d3)
	}
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"8f2b6c1e-3d4a-4f5b-9c6d-7e8f9a0b1c2d", true},
		{"order-42", true},
		{"a.b_c", true},
		{strings.Repeat("x", MaxRequestIDLength), true},
		{"", false},
		{strings.Repeat("x", MaxRequestIDLength+1), false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"a\r\nX-Evil: 1", false},
		{"ü", false},
		{"a%2F", false},
	} {
		if got := ValidRequestID(tc.id); got != tc.ok {
			t.Errorf("ValidRequestID(%q) = %v, want %v", tc.id, got, tc.ok)
		}
	}
}
