package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dartup/dartup/internal/lockfile"
	"github.com/dartup/dartup/internal/proc"
)

// Isolation says how far apart a node keeps its workers from itself and
// from each other.
type Isolation string

// Isolation modes.
const (
	// IsolationAuto gives every app its own unprivileged user when the
	// runner runs as root; otherwise apps share the runner's user (and can
	// read its files), which the runner says once at start.
	IsolationAuto Isolation = "auto"
	// IsolationRequired is IsolationAuto that refuses to start when apps
	// cannot get their own user (the runner is not root).
	IsolationRequired Isolation = "required"
)

// DefaultUIDRange is the range per-app users are allocated from, as
// systemd's DynamicUser does: below the 60000 where regular users end on
// Debian, and far above where adduser starts. Numbers that the system's user
// or group database knows are skipped.
var DefaultUIDRange = [2]uint32{59000, 59999}

// ParseIsolation checks a --isolation value.
func ParseIsolation(s string) (Isolation, error) {
	switch Isolation(s) {
	case IsolationAuto, IsolationRequired:
		return Isolation(s), nil
	}
	return "", fmt.Errorf("isolation %q is not auto or required", s)
}

// ParseUIDRange parses "LO-HI" (e.g. "59000-59999"): 1000 <= LO <= HI,
// HI below 2^31 and not 65534/65535.
func ParseUIDRange(s string) ([2]uint32, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, e1 := strconv.ParseUint(lo, 10, 32)
	b, e2 := strconv.ParseUint(hi, 10, 32)
	if !ok || e1 != nil || e2 != nil || a < 1000 || b < a || b >= 1<<31 || (a <= 65535 && b >= 65534) {
		return [2]uint32{}, fmt.Errorf("uid range %q is not LO-HI with 1000 <= LO <= HI < 2147483648, excluding 65534-65535 (e.g. 59000-59999)", s)
	}
	return [2]uint32{uint32(a), uint32(b)}, nil
}

// allocateUID returns app's user id: the one it has in byApp, else the
// lowest number of [lo, hi] that no app holds and taken does not refuse,
// else the number of an app that no longer exists (gone reports it). The
// second result names the app whose number was recycled ("" when none).
func allocateUID(app string, byApp map[string]uint32, lo, hi uint32, taken func(uint32) bool, gone func(string) bool) (uint32, string, error) {
	if uid, ok := byApp[app]; ok {
		return uid, "", nil
	}
	held := map[uint32]bool{}
	for _, uid := range byApp {
		held[uid] = true
	}
	for uid := lo; uid <= hi && uid >= lo; uid++ {
		if !held[uid] && !taken(uid) {
			return uid, "", nil
		}
	}
	apps := make([]string, 0, len(byApp))
	for a := range byApp {
		apps = append(apps, a)
	}
	slices.Sort(apps)
	for _, a := range apps {
		if gone(a) {
			return byApp[a], a, nil
		}
	}
	return 0, "", fmt.Errorf("no free user id in %d-%d for app %s: every number is held by an app or known to the system; widen --uid-range", lo, hi, app)
}

// identities gives each app the credential its workers run as, and keeps
// the per-app allocation in a file so that an app keeps its user (and owns
// its work dir) across restarts of the node.
type identities struct {
	// fixed is the one credential of every worker (--run-as), or nil.
	fixed *proc.Credential
	runAs string
	// shared is true when workers run as the runner's own user.
	shared bool
	lo, hi uint32
	path   string
	// gone reports whether an app no longer exists (its number may be reused).
	gone func(app string) bool

	mu    sync.Mutex
	byApp map[string]uint32
	// locks are the machine-wide claims on the user ids in byApp (see claim).
	locks map[uint32]*os.File
}

// UIDLockDir is where the nodes of one machine claim the per-app user ids
// they use, one flock'ed file per id, held while the node runs: two nodes on
// one machine never share an app user (the kernel drops a claim when its
// node dies).
var UIDLockDir = "/run/dartup/uids"

// claim takes this node's machine-wide claim on uid; it fails when another
// node (or another runner in this process) holds it.
func (ids *identities) claim(uid uint32) error {
	if _, ok := ids.locks[uid]; ok {
		return nil
	}
	f, holder, err := lockfile.Lock(filepath.Join(UIDLockDir, strconv.FormatUint(uint64(uid), 10)))
	if err != nil {
		if errors.Is(err, lockfile.ErrHeld) {
			return fmt.Errorf("user id %d is used by another dartup node on this machine (pid %s); give each node its own --uid-range", uid, holder)
		}
		return err
	}
	ids.locks[uid] = f
	return nil
}

// close gives up the machine-wide claims.
func (ids *identities) close() {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	for uid, f := range ids.locks {
		f.Close()
		delete(ids.locks, uid)
	}
}

// newIdentities decides how workers run. As root: as runAs when given (never
// root), else each app as its own user from uids, kept in path. Otherwise
// workers share the runner's user, an error under IsolationRequired.
func newIdentities(mode Isolation, runAs string, uids [2]uint32, path string, gone func(string) bool) (*identities, error) {
	ids := &identities{lo: uids[0], hi: uids[1], path: path, gone: gone, byApp: map[string]uint32{}, locks: map[uint32]*os.File{}}
	if os.Geteuid() != 0 {
		if mode == IsolationRequired || runAs != "" {
			return nil, fmt.Errorf("apps cannot run as their own users: dartup runs as uid %d, and only root can switch users; run it as root (e.g. the systemd unit) or drop --isolation required / --run-as", os.Geteuid())
		}
		ids.shared = true
		return ids, nil
	}
	if runAs != "" {
		cred, err := lookupUser(runAs)
		if err != nil {
			return nil, err
		}
		ids.fixed, ids.runAs = cred, runAs
		return ids, nil
	}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &ids.byApp); err != nil {
			return nil, fmt.Errorf("read %s: %w (remove it to allocate app users afresh)", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for app, uid := range ids.byApp {
		// A number now outside the range, or now known to the system (a user
		// added since), is given up: the app gets a new one, and its work
		// dir follows (prepareAppDir).
		if uid < ids.lo || uid > ids.hi || uidTaken(uid) {
			delete(ids.byApp, app)
			continue
		}
		if err := ids.claim(uid); err != nil {
			ids.close()
			return nil, fmt.Errorf("app %s: %w", app, err)
		}
	}
	return ids, nil
}

// lookupUser resolves --run-as: a user name or number, never root.
func lookupUser(name string) (*proc.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("--run-as %s: no such user", name)
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	if uid == 0 || gid == 0 {
		return nil, fmt.Errorf("--run-as %s: workers never run as root (uid or gid 0)", name)
	}
	return &proc.Credential{UID: uint32(uid), GID: uint32(gid)}, nil
}

// credential returns the user app's workers run as: nil when they share the
// runner's. A new app gets a number of its own, saved before it is used.
func (ids *identities) credential(app string) (*proc.Credential, error) {
	if ids.shared {
		return nil, nil
	}
	if ids.fixed != nil {
		return ids.fixed, nil
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	taken := func(uid uint32) bool { return uidTaken(uid) || ids.claim(uid) != nil }
	uid, recycled, err := allocateUID(app, ids.byApp, ids.lo, ids.hi, taken, ids.gone)
	if err != nil {
		return nil, err
	}
	if _, ok := ids.byApp[app]; !ok {
		delete(ids.byApp, recycled)
		ids.byApp[app] = uid
		if err := ids.save(); err != nil {
			delete(ids.byApp, app)
			return nil, err
		}
	}
	return &proc.Credential{UID: uid, GID: uid}, nil
}

func (ids *identities) save() error {
	b, _ := json.MarshalIndent(ids.byApp, "", "  ")
	if err := os.MkdirAll(filepath.Dir(ids.path), 0o700); err != nil {
		return err
	}
	tmp := ids.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, ids.path)
}

// uidTaken reports whether the system's user or group database knows uid
// (as a user id or as a group id): such numbers are never handed to apps.
func uidTaken(uid uint32) bool {
	s := strconv.FormatUint(uint64(uid), 10)
	if _, err := user.LookupId(s); err == nil {
		return true
	}
	_, err := user.LookupGroupId(s)
	return err == nil
}

// appUID returns the user id app has to itself on this node, when it has one
// (per-app users; not with --run-as or a shared user). Nothing else runs as
// it, so whatever runs as it once the app stops here may be killed.
func (ids *identities) appUID(app string) (uint32, bool) {
	if ids.shared || ids.fixed != nil {
		return 0, false
	}
	ids.mu.Lock()
	defer ids.mu.Unlock()
	uid, ok := ids.byApp[app]
	return uid, ok
}

// release gives up app's user id (the app was removed): its number may be
// handed to another app later, once the range is full.
func (ids *identities) release(app string) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	uid, ok := ids.byApp[app]
	if !ok {
		return
	}
	delete(ids.byApp, app)
	if err := ids.save(); err != nil {
		ids.byApp[app] = uid
		return
	}
	if f, ok := ids.locks[uid]; ok {
		f.Close()
		delete(ids.locks, uid)
	}
}

// allUIDs returns every per-app user id allocated on this node.
func (ids *identities) allUIDs() map[string]uint32 {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	out := make(map[string]uint32, len(ids.byApp))
	for app, uid := range ids.byApp {
		out[app] = uid
	}
	return out
}

// userName is the name app's workers get in USER and LOGNAME: the --run-as
// user, "dartup-APP" for a user of its own (one the system's user database
// does not know), or "" when workers share the runner's user.
func (ids *identities) userName(app string) string {
	switch {
	case ids.shared:
		return ""
	case ids.fixed != nil:
		return ids.runAs
	}
	return "dartup-" + app
}

// describe says how workers run, for the start-up log.
func (ids *identities) describe() string {
	switch {
	case ids.shared:
		return fmt.Sprintf("none: apps run as dartup's own user (uid %d)", os.Geteuid())
	case ids.fixed != nil:
		return fmt.Sprintf("every app runs as uid %d gid %d (--run-as)", ids.fixed.UID, ids.fixed.GID)
	}
	return fmt.Sprintf("each app runs as its own user (uids %d-%d)", ids.lo, ids.hi)
}
