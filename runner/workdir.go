package runner

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dartup/dartup/internal/datadir"
	"github.com/dartup/dartup/internal/proc"
)

// Access a path needs at its last component (the bits of an "other" rwx triple).
const (
	needExec fs.FileMode = 0o1
	needRead fs.FileMode = 0o4
)

// checkAccess reports whether a process running as cred can reach path
// (search permission on every directory above it) and has want on path
// itself; the error names the first obstacle and how to remove it. stat is
// os.Stat, or a stand-in in tests. ACLs are not consulted.
func checkAccess(path string, cred proc.Credential, want fs.FileMode, stat func(string) (fs.FileInfo, error)) error {
	path = filepath.Clean(path)
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s is not an absolute path", path)
	}
	parts := strings.Split(path, string(filepath.Separator))[1:]
	cur := "/"
	for i, p := range parts {
		cur = filepath.Join(cur, p)
		st, err := stat(cur)
		if err != nil {
			return fmt.Errorf("%s does not exist on node", cur)
		}
		need := needExec
		if i == len(parts)-1 {
			need = want
		}
		if allowed(st, cred)&need != need {
			what := "enter"
			if i == len(parts)-1 {
				what = map[fs.FileMode]string{needExec: "run", needRead: "read", needRead | needExec: "read and run"}[want]
			}
			return fmt.Errorf("the app's user (uid %d) cannot %s %s (mode %04o, owner uid %d); make it accessible to others (chmod o+%s %s) or put the file where apps can reach it",
				cred.UID, what, cur, st.Mode().Perm(), owner(st), rwx(need), cur)
		}
	}
	return nil
}

// allowed returns the rwx bits (as "other" bits) cred has on st.
func allowed(st fs.FileInfo, cred proc.Credential) fs.FileMode {
	m := st.Mode().Perm()
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		switch {
		case s.Uid == cred.UID:
			return m >> 6 & 0o7
		case s.Gid == cred.GID:
			return m >> 3 & 0o7
		}
	}
	return m & 0o7
}

func owner(st fs.FileInfo) uint32 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Uid
	}
	return 0
}

func rwx(m fs.FileMode) string {
	var b strings.Builder
	if m&needRead != 0 {
		b.WriteByte('r')
	}
	if m&needExec != 0 {
		b.WriteByte('x')
	}
	return b.String()
}

// prepareWorkRoot creates the root of the apps' work dirs. With per-app
// users it is mode 0711, owned by the runner: apps may pass through to their
// own dir but not list the others, and every directory above it must let
// them through.
func prepareWorkRoot(root, dataDir string, isolated bool) error {
	if datadir.Inside(root, dataDir) || datadir.Inside(dataDir, root) {
		return fmt.Errorf("%w: --work-dir %s and --data %s overlap; apps must never reach the data dir: put the work dir beside it (the default, DATA-work)",
			datadir.ErrNotOurs, root, dataDir)
	}
	kind := datadir.Kind{What: "work dir", Flag: "--work-dir", Marker: ".dartup-work", Mode: 0o700}
	if isolated {
		kind.Mode = 0o711
	}
	if err := datadir.Prepare(root, kind); err != nil {
		return err
	}
	if !isolated {
		return nil
	}
	nobody := proc.Credential{UID: 1<<31 - 1, GID: 1<<31 - 1}
	if err := checkAccess(root, nobody, needExec, os.Stat); err != nil {
		return fmt.Errorf("apps could not reach their work dirs under %s: %w; choose --work-dir under a directory others may enter (e.g. /var/lib/dartup-work)", root, err)
	}
	return nil
}

// prepareAppDir creates app's work dir under root, mode 0700 and owned by
// cred (nil: the runner's user). A dir left by another user (a changed
// --uid-range or --run-as) is handed over: every entry is chowned through an
// os.Root, so that no symlink the app planted (or swaps in while this runs)
// makes the runner, as root, chown anything outside the dir.
func prepareAppDir(root, app string, cred *proc.Credential) (string, error) {
	dir := filepath.Join(root, app)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create work dir: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("work dir %s is not a directory", dir)
	}
	if cred == nil || owner(st) == cred.UID {
		return dir, nil
	}
	if err := chownTree(dir, int(cred.UID), int(cred.GID)); err != nil {
		return "", fmt.Errorf("give work dir %s to uid %d: %w", dir, cred.UID, err)
	}
	return dir, nil
}

// chownTree gives dir and everything in it to uid:gid, never leaving dir:
// the walk and the chowns go through an os.Root, which refuses paths that a
// symlink would lead out of, and Lchown never follows the last component.
func chownTree(dir string, uid, gid int) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return root.Lchown(p, uid, gid)
	})
}

// removeTree deletes dir and everything in it (nothing when it is missing),
// through an os.Root, so that no symlink inside leads the deletion out.
func removeTree(dir string) error {
	parent, err := os.OpenRoot(filepath.Dir(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing was made there (an app without an artifact)
	}
	if err != nil {
		return err
	}
	defer parent.Close()
	return parent.RemoveAll(filepath.Base(dir))
}

// exposeArtifact makes the cached artifact at cached (named digest) runnable
// by app's user under the app's name: a hard link (or, for an app with a
// user of its own, a copy across file systems) at ROOT/.artifacts/APP/
// DIGEST/APP, so that `ps` and `top` show the app's name, and apps never
// see the cache itself nor each other's artifacts (APP's directory only
// app's group may enter). Without a credential, where no link can be made,
// the cached file is used as it is.
func exposeArtifact(root, app, digest, cached string, cred *proc.Credential) (string, error) {
	dir, err := exposeDir(root, app, digest, cred)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, app)
	if a, err := os.Stat(dst); err == nil {
		if b, err := os.Stat(cached); err == nil && os.SameFile(a, b) {
			return dst, nil
		}
	}
	// Instances of app start at once and expose the same file: each link
	// (or copy) is made under a name of its own and renamed over dst, so
	// that dst never goes missing while another instance runs it.
	if tmp, err := tempName(dir, app); err == nil {
		if err := os.Link(cached, tmp); err == nil {
			err := os.Rename(tmp, dst)
			// A rename onto another link to the same file does nothing.
			_ = os.Remove(tmp)
			if err != nil {
				return "", err
			}
			return dst, nil
		}
	}
	if cred == nil {
		return cached, nil
	}
	return dst, copyFile(cached, dst, 0o555)
}

// tempName is a name in dir, starting with base, that no other file has.
func tempName(dir, base string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return filepath.Join(dir, "."+base+"."+hex.EncodeToString(b[:])+".tmp"), nil
}

// exposeDir makes ROOT/.artifacts/APP/DIGEST, which only app's group may
// enter (everyone, for an app without a user of its own), and returns it.
func exposeDir(root, app, digest string, cred *proc.Credential) (string, error) {
	base := filepath.Join(root, ".artifacts")
	dir := filepath.Join(base, app)
	gid, mode := 0, fs.FileMode(0o755)
	if cred != nil {
		gid, mode = int(cred.GID), 0o750
	}
	for _, d := range []struct {
		path string
		mode fs.FileMode
		gid  int
	}{{base, 0o711, 0}, {dir, mode, gid}, {filepath.Join(dir, digest), mode, gid}} {
		if err := os.Mkdir(d.path, d.mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		if err := os.Lchown(d.path, 0, d.gid); err != nil && cred != nil {
			return "", err
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, digest), nil
}

// exposeFile copies the public file src into ROOT/DIR (mode 0755), readable
// by everyone (0644), and returns the copy's path.
func exposeFile(root, dir, src string) (string, error) {
	d := filepath.Join(root, dir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(d, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(d, filepath.Base(src))
	return dst, copyFile(src, dst, 0o644)
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := tempName(filepath.Dir(dst), filepath.Base(dst))
	if err != nil {
		return err
	}
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after a failure; a no-op once renamed
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// pruneExposed removes the exposed artifacts that no current spec uses:
// keep maps app → digest.
func pruneExposed(root string, keep map[string]string) {
	base := filepath.Join(root, ".artifacts")
	apps, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, a := range apps {
		files, _ := os.ReadDir(filepath.Join(base, a.Name()))
		for _, f := range files {
			if keep[a.Name()] != f.Name() {
				_ = os.RemoveAll(filepath.Join(base, a.Name(), f.Name()))
			}
		}
		if _, ok := keep[a.Name()]; !ok {
			_ = os.Remove(filepath.Join(base, a.Name()))
		}
	}
}
