package broker

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzReadHashes parses arbitrary password files (written to disk, read by
// readHashes as the server does). It must never panic; every user it
// returns is non-empty, without ':' or a line break, with a "$2" hash on one
// line; and what it returns survives writeHashes and readHashes unchanged.
// Seeds: testdata/fuzz/FuzzReadHashes.
func FuzzReadHashes(f *testing.F) {
	f.Add([]byte("# dartup users: user:bcrypt-hash. Edit with `dartup password`.\nalice:$2a$10$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01\n"))
	f.Add([]byte("\n\n  bob:$2b$04$x  \r\n#c:$2\n"))
	f.Add([]byte("nocolon\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "passwords")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		hashes, err := readHashes(path)
		if err != nil {
			return // refused: the server keeps its last good set
		}
		for user, hash := range hashes {
			if user == "" || strings.ContainsAny(user, ":\n") || strings.HasPrefix(user, "#") ||
				!strings.HasPrefix(string(hash), "$2") || strings.ContainsAny(string(hash), "\n") {
				t.Fatalf("parsed user %q with hash %q", user, hash)
			}
		}
		out := filepath.Join(dir, "rewritten")
		if err := writeHashes(out, hashes); err != nil {
			t.Fatal(err)
		}
		again, err := readHashes(out)
		if err != nil {
			t.Fatalf("the rewritten file is refused: %v", err)
		}
		if len(again) != len(hashes) || (len(hashes) > 0 && !reflect.DeepEqual(again, hashes)) {
			t.Fatalf("round trip changed the users:\n%q\n%q", hashes, again)
		}
	})
}
