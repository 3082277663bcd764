package broker

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzReadHashes parses arbitrary password files (parseHashes, as the server
// does). It must never panic; every user it keeps is a valid user name with a
// "$2" hash on one line; every bad line it reports exists; and what it keeps
// survives writeHashes and readHashes unchanged, with no bad line.
// Seeds: testdata/fuzz/FuzzReadHashes.
func FuzzReadHashes(f *testing.F) {
	f.Add([]byte("# dartup users: user:bcrypt-hash. Edit with `dartup password`.\nalice:$2a$10$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01\n"))
	f.Add([]byte("\n\n  bob:$2b$04$x  \r\n#c:$2\n"))
	f.Add([]byte("nocolon\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		hashes, bad := parseHashes("passwords", data)
		for user, hash := range hashes {
			if ValidateUser(user) != nil || strings.HasPrefix(user, "#") ||
				!strings.HasPrefix(string(hash), "$2") || strings.ContainsAny(string(hash), "\n") {
				t.Fatalf("parsed user %q with hash %q", user, hash)
			}
		}
		lines := strings.Count(string(data), "\n") + 1
		if lines == 1 { // a file whose lines end in CR alone
			lines = strings.Count(string(data), "\r") + 1
		}
		for _, b := range bad {
			if b.Line < 1 || b.Line > lines {
				t.Fatalf("bad line number %d", b.Line)
			}
		}
		out := filepath.Join(dir, "rewritten")
		if err := writeHashes(out, hashes); err != nil {
			t.Fatal(err)
		}
		again, badAgain, err := readHashes(out)
		if err != nil || len(badAgain) > 0 {
			t.Fatalf("the rewritten file is refused: %v %v", err, badAgain)
		}
		if len(again) != len(hashes) || (len(hashes) > 0 && !reflect.DeepEqual(again, hashes)) {
			t.Fatalf("round trip changed the users:\n%q\n%q", hashes, again)
		}
	})
}
