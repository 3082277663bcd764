package clientsdk_test

import (
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

func TestRevisionKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		app  string
		v    uint64
		okay bool
	}{
		{clientsdk.RevisionKey("web", 12), "web", 12, true},
		{"web.0", "", 0, false},
		{"web", "", 0, false},
		{"web.x", "", 0, false},
		{"a.b.3", "", 0, false},
		{".3", "", 0, false},
	} {
		app, v, ok := clientsdk.ParseRevisionKey(tc.key)
		if app != tc.app || v != tc.v || ok != tc.okay {
			t.Errorf("ParseRevisionKey(%q) = %q, %d, %v; want %q, %d, %v", tc.key, app, v, ok, tc.app, tc.v, tc.okay)
		}
	}
}
