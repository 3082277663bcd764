package broker

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// PasswordFileName is the name of the password file inside the data dir.
const PasswordFileName = "passwords"

// BcryptCost is the cost of the hashes `dartup password` writes.
const BcryptCost = 10

// hashCost is the cost SetPassword uses: BcryptCost, lowered only by the
// package's tests (bcrypt under the race detector is ~12x slower).
var hashCost = BcryptCost

// ErrNoSuchUser is returned by DeleteUser for a user not in the file.
var ErrNoSuchUser = errors.New("no such user")

// ValidateUser checks a user name for the password file: 1 to 64 printable
// characters without ':' or whitespace.
func ValidateUser(user string) error {
	if user == "" || len(user) > 64 {
		return fmt.Errorf("user name must be 1 to 64 characters")
	}
	for _, r := range user {
		if r <= ' ' || r == ':' || r == 0x7f {
			return fmt.Errorf("user name %q may not contain ':', spaces or control characters", user)
		}
	}
	return nil
}

// readHashes parses a password file: one "user:bcrypt-hash" per line, '#'
// comments and blank lines ignored. A missing file is an empty set.
func readHashes(path string) (map[string][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("%s line %d is not user:bcrypt-hash", path, n)
		}
		out[user] = []byte(hash)
	}
	return out, sc.Err()
}

// writeHashes replaces the file atomically with mode 0600.
func writeHashes(path string, hashes map[string][]byte) error {
	users := make([]string, 0, len(hashes))
	for u := range hashes {
		users = append(users, u)
	}
	sort.Strings(users)
	var buf bytes.Buffer
	buf.WriteString("# dartup users: user:bcrypt-hash. Edit with `dartup password`.\n")
	for _, u := range users {
		fmt.Fprintf(&buf, "%s:%s\n", u, hashes[u])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".passwords-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// SetPassword creates or replaces user in the password file at path with a
// bcrypt hash of password. Errors: an invalid user name, an empty password,
// or I/O failures.
func SetPassword(path, user, password string) error {
	if err := ValidateUser(user); err != nil {
		return err
	}
	if password == "" {
		return errors.New("password is empty")
	}
	hashes, err := readHashes(path)
	if err != nil {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), hashCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	hashes[user] = h
	return writeHashes(path, hashes)
}

// DeleteUser removes user from the password file at path. Errors:
// ErrNoSuchUser, or I/O failures.
func DeleteUser(path, user string) error {
	hashes, err := readHashes(path)
	if err != nil {
		return err
	}
	if _, ok := hashes[user]; !ok {
		return fmt.Errorf("%w %q in %s", ErrNoSuchUser, user, path)
	}
	delete(hashes, user)
	return writeHashes(path, hashes)
}

// Passwords checks user names and passwords against a password file, and
// picks up changes to the file without a restart (it re-reads the file when
// its size or modification time changes, checked at most every 250 ms).
// Successful checks are cached by a SHA-256 of user, password and hash, so
// that HTTP Basic auth does not pay bcrypt's cost on every request.
type Passwords struct {
	path string

	mu        sync.Mutex
	hashes    map[string][]byte
	modTime   time.Time
	size      int64
	checkedAt time.Time
	ok        map[[32]byte]bool
}

// NewPasswords returns a checker for the file at path (which may not exist yet).
func NewPasswords(path string) *Passwords {
	return &Passwords{path: path, hashes: map[string][]byte{}, ok: map[[32]byte]bool{}}
}

// Path returns the password file's path.
func (p *Passwords) Path() string { return p.path }

func (p *Passwords) refreshLocked() {
	now := time.Now()
	if now.Sub(p.checkedAt) < 250*time.Millisecond {
		return
	}
	p.checkedAt = now
	st, err := os.Stat(p.path)
	if err != nil {
		if len(p.hashes) > 0 || !p.modTime.IsZero() {
			p.hashes, p.ok, p.modTime, p.size = map[string][]byte{}, map[[32]byte]bool{}, time.Time{}, 0
		}
		return
	}
	if st.ModTime().Equal(p.modTime) && st.Size() == p.size {
		return
	}
	h, err := readHashes(p.path)
	if err != nil {
		return // keep the last good set
	}
	p.hashes, p.ok, p.modTime, p.size = h, map[[32]byte]bool{}, st.ModTime(), st.Size()
}

// Verify reports whether password is user's password.
func (p *Passwords) Verify(user, password string) bool {
	p.mu.Lock()
	p.refreshLocked()
	hash, found := p.hashes[user]
	var key [32]byte
	if found {
		key = sha256.Sum256([]byte(user + "\x00" + password + "\x00" + string(hash)))
		if p.ok[key] {
			p.mu.Unlock()
			return true
		}
	}
	p.mu.Unlock()
	if !found {
		// Spend the same time as for a known user, so that response times
		// do not tell which user names exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false
	}
	p.mu.Lock()
	p.ok[key] = true
	p.mu.Unlock()
	return true
}

// Users returns the number of users in the file.
func (p *Passwords) Users() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	return len(p.hashes)
}

var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("dartup: no such user"), hashCost)
	return h
})
