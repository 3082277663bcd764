package broker

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

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
	if !utf8.ValidString(user) || user[0] == '#' {
		return fmt.Errorf("user name %q must be valid UTF-8 and not start with '#' (a comment in the password file)", user)
	}
	for _, r := range user {
		if r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("user name %q may not contain ':', spaces or control characters", user)
		}
	}
	return nil
}

// MaxPasswordBytes is the longest password bcrypt takes.
const MaxPasswordBytes = 72

// ErrPasswordTooLong is returned by SetPassword for a password over
// MaxPasswordBytes bytes.
var ErrPasswordTooLong = fmt.Errorf("the password is longer than %d bytes, which bcrypt cannot hash; choose a shorter one", MaxPasswordBytes)

// PasswordFileError is a line of the password file that is not
// "user:bcrypt-hash". It never holds the line's text, which may be a
// clear-text password someone typed in by hand.
type PasswordFileError struct {
	Path   string
	Line   int
	Reason string
}

func (e *PasswordFileError) Error() string {
	return fmt.Sprintf("%s line %d: %s", e.Path, e.Line, e.Reason)
}

// parseHashes parses a password file: one "user:bcrypt-hash" per line, '#'
// comments and blank lines ignored. Lines that are not user:bcrypt-hash are
// left out and returned as bad; a later line for a user replaces an earlier one.
func parseHashes(path string, data []byte) (hashes map[string][]byte, bad []*PasswordFileError) {
	hashes = map[string][]byte{}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM an editor added
	text := string(data)
	if !strings.Contains(text, "\n") {
		text = strings.ReplaceAll(text, "\r", "\n") // lines ended by CR alone
	}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		reason := ""
		user, hash, ok := strings.Cut(line, ":")
		if !ok {
			reason = "no ':' (want user:bcrypt-hash)"
		} else if ValidateUser(user) != nil {
			reason = "the user name is empty, over 64 characters, or has spaces or control characters"
		} else if _, err := bcrypt.Cost([]byte(hash)); err != nil || !strings.HasPrefix(hash, "$2") {
			reason = "what follows the user name is not a bcrypt hash"
		}
		if reason != "" {
			bad = append(bad, &PasswordFileError{Path: path, Line: n + 1, Reason: reason})
			continue
		}
		hashes[user] = []byte(hash)
	}
	return hashes, bad
}

// readHashes reads and parses the password file at path (see parseHashes).
// A missing file is an empty set; err is an I/O error.
func readHashes(path string) (hashes map[string][]byte, bad []*PasswordFileError, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string][]byte{}, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	hashes, bad = parseHashes(path, b)
	return hashes, bad, nil
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

// editPasswordFile applies edit to the users of the password file at path
// and writes the file back, holding the file's lock (PATH.lock) from the read
// to the rename, so that concurrent writers, in this process or others, do
// not lose each other's changes. It refuses to rewrite a file with bad lines
// (the error wraps the first *PasswordFileError): they would be dropped.
func editPasswordFile(path string, edit func(map[string][]byte) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	unlock, err := lockPasswordFile(path)
	if err != nil {
		return err
	}
	defer unlock()
	hashes, bad, err := readHashes(path)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		more := ""
		if len(bad) > 1 {
			more = fmt.Sprintf(" (and %d more bad lines)", len(bad)-1)
		}
		return fmt.Errorf("%w%s; fix or delete it by hand first: rewriting the file would drop it", bad[0], more)
	}
	if err := edit(hashes); err != nil {
		return err
	}
	return writeHashes(path, hashes)
}

// SetPassword creates or replaces user in the password file at path with a
// bcrypt hash of password, under the file's lock (see editPasswordFile).
// Errors: an invalid user name, an empty password, a file with bad lines
// (wrapping *PasswordFileError), or I/O failures.
func SetPassword(path, user, password string) error {
	if err := ValidateUser(user); err != nil {
		return err
	}
	if password == "" {
		return errors.New("password is empty")
	}
	if len(password) > MaxPasswordBytes {
		return ErrPasswordTooLong
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), hashCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	return editPasswordFile(path, func(hashes map[string][]byte) error {
		hashes[user] = h
		return nil
	})
}

// DeleteUser removes user from the password file at path, under the file's
// lock. Errors: ErrNoSuchUser, a file with bad lines (wrapping
// *PasswordFileError), or I/O failures.
func DeleteUser(path, user string) error {
	return editPasswordFile(path, func(hashes map[string][]byte) error {
		if _, ok := hashes[user]; !ok {
			return fmt.Errorf("%w %q in %s", ErrNoSuchUser, user, path)
		}
		delete(hashes, user)
		return nil
	})
}

// Passwords checks user names and passwords against a password file, and
// picks up changes to the file without a restart (it re-reads the file when
// its size or modification time changes, checked at most every 250 ms).
// Successful checks are cached by a SHA-256 of user, password and hash, so
// that HTTP Basic auth does not pay bcrypt's cost on every request.
//
// Lines of the file that are not user:bcrypt-hash are skipped and logged at
// error level with their line number (never their text), once per version of
// the file; the other users keep working. A file that cannot be read keeps
// the users read before, also logged.
type Passwords struct {
	path   string
	logger *slog.Logger
	// bcrypts counts bcrypt comparisons, for tests and benchmarks.
	bcrypts atomic.Int64

	mu        sync.Mutex
	hashes    map[string][]byte
	dummyCost int // the cost of the dummy hash unknown users are checked against
	modTime   time.Time
	size      int64
	checkedAt time.Time
	failed    fileVersion // the version that last failed to read, logged once
	ok        map[[32]byte]bool
}

type fileVersion struct {
	modTime time.Time
	size    int64
}

// PasswordsOption configures NewPasswords.
type PasswordsOption func(*Passwords)

// WithPasswordsLogger logs problems with the password file (skipped lines, a
// file that cannot be read) to l. The default discards them.
func WithPasswordsLogger(l *slog.Logger) PasswordsOption {
	return func(p *Passwords) { p.logger = l }
}

// NewPasswords returns a checker for the file at path (which may not exist yet).
func NewPasswords(path string, opts ...PasswordsOption) *Passwords {
	p := &Passwords{path: path, logger: discardLogger(), hashes: map[string][]byte{}, dummyCost: hashCost, ok: map[[32]byte]bool{}}
	for _, o := range opts {
		o(p)
	}
	return p
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
	if errors.Is(err, os.ErrNotExist) {
		if len(p.hashes) > 0 {
			p.logger.Warn("the password file is gone: no users can log in", "file", p.path)
		}
		p.setLocked(map[string][]byte{}, fileVersion{})
		return
	}
	v := fileVersion{size: -1} // stands for "cannot stat"
	if err == nil {
		v = fileVersion{st.ModTime(), st.Size()}
		if v.modTime.Equal(p.modTime) && v.size == p.size {
			return
		}
	}
	var h map[string][]byte
	var bad []*PasswordFileError
	if err == nil {
		h, bad, err = readHashes(p.path)
	}
	if err != nil {
		if p.failed != v {
			p.logger.Error("cannot read the password file; keeping the users read before", "file", p.path, "users", len(p.hashes), "err", err)
			p.failed = v
		}
		return
	}
	p.logBadLines(bad, len(h))
	p.setLocked(h, v)
}

// logBadLines logs the skipped lines of the file, at most five of them.
func (p *Passwords) logBadLines(bad []*PasswordFileError, users int) {
	for i, e := range bad {
		if i == 5 {
			p.logger.Error("password file: more lines skipped", "file", p.path, "more", len(bad)-i)
			break
		}
		p.logger.Error("password file: skipping a line that is not user:bcrypt-hash; whoever it was for cannot log in until it is fixed",
			"file", e.Path, "line", e.Line, "reason", e.Reason, "users", users)
	}
}

func (p *Passwords) setLocked(h map[string][]byte, v fileVersion) {
	p.hashes, p.ok, p.modTime, p.size, p.failed = h, map[[32]byte]bool{}, v.modTime, v.size, fileVersion{}
	p.dummyCost = commonCost(h)
}

// commonCost is the most common bcrypt cost in h (the higher one on a tie),
// so that unknown users cost as much time as most known ones; hashCost for
// an empty set. It is capped at BcryptCost+4, because a hand-edited hash with
// an absurd cost must not make every unknown user take minutes.
func commonCost(h map[string][]byte) int {
	n := map[int]int{}
	best := hashCost
	for _, hash := range h {
		c, _ := bcrypt.Cost(hash)
		n[c]++
		if n[c] > n[best] || (n[c] == n[best] && c > best) {
			best = c
		}
	}
	return min(best, BcryptCost+4)
}

// credential is what Passwords knows about a user and password without any
// bcrypt work: the hash to compare with, and whether the pair is already
// verified.
type credential struct {
	known     bool
	cached    bool
	hash      []byte
	dummyCost int
	key       [32]byte
}

// lookup finds user's hash, and whether password is already verified for it.
func (p *Passwords) lookup(user, password string) credential {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	hash, known := p.hashes[user]
	if !known {
		return credential{dummyCost: p.dummyCost}
	}
	key := sha256.Sum256([]byte(user + "\x00" + password + "\x00" + string(hash)))
	return credential{known: true, cached: p.ok[key], hash: hash, key: key}
}

// compare runs the bcrypt check of password against c and caches a success.
// An unknown user is checked against a dummy hash of the file's usual cost,
// so that response times do not tell which user names exist.
func (p *Passwords) compare(c credential, password string) bool {
	p.bcrypts.Add(1)
	if !c.known {
		_ = bcrypt.CompareHashAndPassword(dummyHash(c.dummyCost), []byte(password))
		return false
	}
	if bcrypt.CompareHashAndPassword(c.hash, []byte(password)) != nil {
		return false
	}
	p.mu.Lock()
	p.ok[c.key] = true
	p.mu.Unlock()
	return true
}

// Verify reports whether password is user's password. It has no rate limit
// of its own: the broker checks logins through its login limiter.
func (p *Passwords) Verify(user, password string) bool {
	c := p.lookup(user, password)
	return c.cached || p.compare(c, password)
}

// load reads the file now, logging its bad lines, and returns the number of
// users. Unlike a check, it does not delay noticing the next change.
func (p *Passwords) load() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkedAt = time.Time{}
	p.refreshLocked()
	p.checkedAt = time.Time{}
	return len(p.hashes)
}

// Users returns the number of users in the file.
func (p *Passwords) Users() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	return len(p.hashes)
}

// dummyHashes holds one dummy hash per bcrypt cost (func() []byte values).
var dummyHashes sync.Map

// dummyHash returns the hash of a password nobody has, with the given cost.
func dummyHash(cost int) []byte {
	f, _ := dummyHashes.LoadOrStore(cost, sync.OnceValue(func() []byte {
		h, _ := bcrypt.GenerateFromPassword([]byte("dartup: no such user"), cost)
		return h
	}))
	return f.(func() []byte)()
}
