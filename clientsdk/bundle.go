package clientsdk

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Bundle says that an app's artifact is a folder (a gzip'd tar pushed as one
// content-addressed artifact), unpacked per revision on the node; Entry runs
// with the folder as its working directory (unless Cwd says otherwise).
type Bundle struct {
	// Entry is the program to run, a slash-separated path inside the folder.
	Entry string `json:"entry"`
}

// Bounds of a folder bundle.
const (
	// MaxBundleFiles bounds the files and folders of a bundle.
	MaxBundleFiles = 100000
	// MaxBundleBytes bounds a bundle's unpacked size (4 GiB).
	MaxBundleBytes = 4 << 30
)

// ValidateEntry checks a bundle's entry: a relative path inside the folder.
func ValidateEntry(entry string) error {
	clean := path.Clean(entry)
	switch {
	case entry == "" || len(entry) > MaxInterpreterLength || strings.ContainsRune(entry, 0):
		return fmt.Errorf("the entry %q is not a path (1 to %d bytes, no NUL)", entry, MaxInterpreterLength)
	case path.IsAbs(entry) || clean == ".." || strings.HasPrefix(clean, "../") || clean == ".":
		return fmt.Errorf("the entry %q must be a file inside the folder, e.g. bin/server", entry)
	}
	return nil
}

// WriteBundle writes the folder dir to w as a gzip'd tar that depends only on
// the files' names, contents and executable bits (sorted, no times or
// owners), so that the same folder always has the same digest. The file
// entry (slash-separated, "" for none) is marked executable whatever its
// mode here (a Windows client has no such bit). Regular files and folders
// only: a symbolic link or a special file is refused, naming it.
func WriteBundle(dir, entry string, w io.Writer) error {
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	files, total := 0, int64(0)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if files++; files > MaxBundleFiles {
			return fmt.Errorf("%s has more than %d files and folders", dir, MaxBundleFiles)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		case info.Mode().IsRegular():
			h.Typeflag, h.Size, h.Mode = tar.TypeReg, info.Size(), 0o644
			if info.Mode()&0o111 != 0 || h.Name == entry {
				h.Mode = 0o755
			}
			if total += info.Size(); total > MaxBundleBytes {
				return fmt.Errorf("%s holds more than %d bytes", dir, int64(MaxBundleBytes))
			}
		case info.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link; a pushed folder holds only files and folders (copy what it points to instead)", p)
		default:
			return fmt.Errorf("%s is a special file (%s); a pushed folder holds only files and folders", p, info.Mode().Type())
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, h.Size)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
