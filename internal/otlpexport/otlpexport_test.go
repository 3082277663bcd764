package otlpexport

import (
	"strings"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in, want string
		err      string
	}{
		{"http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces", ""},
		{"http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces", ""},
		{"https://otel.example", "https://otel.example/v1/traces", ""},
		{"https://otel.example/otlp/v1/traces", "https://otel.example/otlp/v1/traces", ""},
		{"http://[::1]:4318", "http://[::1]:4318/v1/traces", ""},
		{"", "", "http:// or https://"},
		{"127.0.0.1:4318", "", "http:// or https://"},
		{"grpc://127.0.0.1:4317", "", "http:// or https://"},
		{"ftp://x", "", "http:// or https://"},
		{"http://", "", "no host"},
		{"http:///v1/traces", "", "no host"},
		{"http://user:secret@127.0.0.1:4318", "", "user name or password"},
		{"http://127.0.0.1:4318/v1/traces?token=x", "", "query or fragment"},
		{"http://127.0.0.1:4318/#x", "", "query or fragment"},
		{"http://127.0.0.1:/", "", "empty port"},
		{"http://127.0.0.1:65535", "http://127.0.0.1:65535/v1/traces", ""},
		{"http://127.0.0.1:99999", "", "port 99999 is not from 1 to 65535"},
		{"http://127.0.0.1:0", "", "port 0 is not from 1 to 65535"},
		{"http://[::1]:070000/", "", "port 070000 is not from 1 to 65535"},
		{"http://127.0.0.1:4318/\x7f", "", "not a URL"},
		{"http://h/" + strings.Repeat("a", maxEndpointLength), "", "over 2048"},
	}
	for _, tc := range tests {
		got, err := ParseEndpoint(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseEndpoint(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseEndpoint(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("the error repeats the password: %v", err)
		}
	}
}
