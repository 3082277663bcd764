package clientsdk

import (
	"testing"

	"github.com/nats-io/nats.go"
)

func TestGuardPassword(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		servers []string
		opts    []nats.Option
		allow   bool
		guarded bool
	}{
		{"loopback with password", []string{"nats://127.0.0.1:4222"}, []nats.Option{nats.UserInfo("a", "pw")}, false, false},
		{"localhost, ::1 and 0.0.0.0", []string{"nats://localhost:4222", "nats://[::1]:4222", "nats://0.0.0.0:4222"}, []nats.Option{nats.UserInfo("a", "pw")}, false, false},
		{"remote with password", []string{"nats://10.0.0.1:4222"}, []nats.Option{nats.UserInfo("a", "pw")}, false, true},
		{"remote without scheme", []string{"dartup.example:4222"}, []nats.Option{nats.UserInfo("a", "pw")}, false, true},
		{"one remote among loopback", []string{"nats://127.0.0.1:4222", "nats://10.0.0.1:4222"}, []nats.Option{nats.Token("t")}, false, true},
		{"password in the URL", []string{"nats://a:pw@10.0.0.1:4222"}, nil, false, true},
		{"remote tls://", []string{"tls://10.0.0.1:4222"}, []nats.Option{nats.UserInfo("a", "pw")}, false, false},
		{"remote, TLS configured", []string{"nats://10.0.0.1:4222"}, []nats.Option{nats.UserInfo("a", "pw"), nats.Secure()}, false, false},
		{"remote without a secret", []string{"nats://10.0.0.1:4222"}, nil, false, false},
		{"remote, plaintext allowed", []string{"nats://10.0.0.1:4222"}, []nats.Option{nats.UserInfo("a", "pw")}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := nats.GetDefaultOptions()
			o.Servers = tc.servers
			for _, opt := range tc.opts {
				if err := opt(&o); err != nil {
					t.Fatal(err)
				}
			}
			secure := o.Secure
			if got := guardPassword(&o, tc.allow); got != tc.guarded || o.Secure != (secure || tc.guarded) {
				t.Errorf("guardPassword = %v (Secure %v), want %v", got, o.Secure, tc.guarded)
			}
		})
	}
}
