package clientsdk

import (
	"slices"
	"strings"
	"testing"
)

func TestWorkerTokens(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	w := strings.Repeat("ab", 16)
	app := WorkerToken(secret, "fn", "n1")
	wt := LambdaWorkerToken(secret, "fn", "n1", w)
	mac := func(tok string) string { return tok[strings.LastIndexByte(tok, '.')+1:] }
	for _, tc := range []struct {
		name, token        string
		app, nonce, worker string
		ok                 bool
	}{
		{"app token", app, "fn", "n1", "", true},
		{"worker token", wt, "fn", "n1", w, true},
		{"another secret", LambdaWorkerToken([]byte("other"), "fn", "n1", w), "fn", "n1", w, false},
		{"worker id swapped", strings.Replace(wt, "."+w+".", "."+strings.Repeat("cd", 16)+".", 1), "fn", "n1", strings.Repeat("cd", 16), false},
		{"app MAC with a worker id", WorkerTokenPrefix + "fn.n1." + w + "." + mac(app), "fn", "n1", w, false},
		{"worker MAC as an app token", WorkerTokenPrefix + "fn.n1." + mac(wt), "fn", "n1", "", false},
		{"worker id not hex", WorkerTokenPrefix + "fn.n1.XYZ." + mac(wt), "", "", "", false},
		{"worker id too long", LambdaWorkerToken(secret, "fn", "n1", strings.Repeat("a", 65)), "", "", "", false},
		{"five parts", wt + ".x", "", "", "", false},
		{"bad app name", LambdaWorkerToken(secret, "f n", "n1", w), "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, n, wk, ok := VerifyWorkerToken(secret, tc.token)
			if ok != tc.ok || (ok && (a != tc.app || n != tc.nonce || wk != tc.worker)) {
				t.Fatalf("VerifyWorkerToken(%q) = %q %q %q %v", tc.token, a, n, wk, ok)
			}
		})
	}
	if _, _, _, ok := VerifyWorkerToken(nil, wt); ok {
		t.Fatal("a token verified without a secret")
	}
}

func TestLambdaWorkerPermissions(t *testing.T) {
	w := strings.Repeat("0a", 16)
	pub, sub := LambdaWorkerPermissions("fn", w)
	apub, asub := WorkerPermissions("fn")
	if !slices.Equal(pub, apub) || !slices.Equal(sub, append(asub, "dartup.native.fn."+w, "lambda.fn dartup-lambda")) {
		t.Fatalf("publish %v, subscribe %v", pub, sub)
	}
	for _, p := range pub {
		if strings.HasPrefix(p, NativeWorkerPrefix) || p == ">" {
			t.Fatalf("a worker may publish to %s", p)
		}
	}
}

func TestCleanErrorType(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	for _, tc := range []struct{ in, want string }{
		{"StateError", "StateError"},
		{" a\r\nb\tc\x7f", "a  b c"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{long, strings.Repeat("é", 64)},
		{strings.Repeat("x", 127) + "é", strings.Repeat("x", 127)},
	} {
		if got := CleanErrorType(tc.in); got != tc.want {
			t.Errorf("CleanErrorType(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if !ValidWorkerID(strings.Repeat("f", 64)) || ValidWorkerID("") || ValidWorkerID("ABCD") || ValidWorkerID(strings.Repeat("f", 65)) {
		t.Fatal("ValidWorkerID")
	}
}
