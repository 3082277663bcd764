package runner

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
)

// bundleDone marks a bundle folder unpacked whole.
const bundleDone = ".dartup-unpacked"

// exposeBundle unpacks the cached bundle (a gzip'd tar, see
// clientsdk.WriteBundle) once per revision into ROOT/.artifacts/APP/DIGEST/
// APP, readable by app's user (its group) and no one else's, and returns
// that folder. A bundle whose names leave the folder, or that holds anything
// but files and folders, or more than clientsdk's bounds, is refused.
func exposeBundle(root, app, digest, cached string, cred *proc.Credential) (string, error) {
	parent, err := exposeDir(root, app, digest, cred)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(parent, app)
	if _, err := os.Stat(filepath.Join(dir, bundleDone)); err == nil {
		return dir, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := unpack(cached, dir, cred); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("unpack the pushed folder: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundleDone), nil, 0o400); err != nil {
		return "", err
	}
	return dir, nil
}

// unpack extracts the gzip'd tar at src into dir (made here).
func unpack(src, dir string, cred *proc.Credential) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	if err := mkdirFor(dir, cred); err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	files, total := 0, int64(0)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if files++; files > clientsdk.MaxBundleFiles {
			return fmt.Errorf("more than %d files and folders", clientsdk.MaxBundleFiles)
		}
		name := path.Clean(h.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || name == "." {
			return fmt.Errorf("the name %q leaves the folder", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = mkdirFor(target, cred)
		case tar.TypeReg:
			if total += h.Size; total > clientsdk.MaxBundleBytes {
				return fmt.Errorf("more than %d bytes", int64(clientsdk.MaxBundleBytes))
			}
			err = writeBundleFile(target, tr, h.Mode&0o111 != 0, cred)
		default:
			return fmt.Errorf("%q is neither a file nor a folder", h.Name)
		}
		if err != nil {
			return err
		}
	}
}

// mkdirFor makes a bundle folder: the app's group may enter it (0750),
// or everyone without a user of its own (0755).
func mkdirFor(dir string, cred *proc.Credential) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return setOwner(dir, 0o750, 0o755, cred)
}

// writeBundleFile writes one file of a bundle, read-only (and executable
// when it was), for the app's group.
func writeBundleFile(target string, r io.Reader, exec bool, cred *proc.Credential) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if exec {
		return setOwner(target, 0o550, 0o555, cred)
	}
	return setOwner(target, 0o440, 0o444, cred)
}

// setOwner gives path to root and the app's group with mode withUser, or
// mode without to everyone when the app has no user of its own.
func setOwner(path string, withUser, without fs.FileMode, cred *proc.Credential) error {
	if cred == nil {
		return os.Chmod(path, without)
	}
	if err := os.Lchown(path, 0, int(cred.GID)); err != nil {
		return err
	}
	return os.Chmod(path, withUser)
}
