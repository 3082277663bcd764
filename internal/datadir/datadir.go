// Package datadir prepares the directories dartup keeps to itself (a data
// dir, a work dir) so that a careless flag cannot hand a system directory, or
// a directory someone else controls, to dartup or to its apps: a directory
// is used only when dartup made it (it holds dartup's marker file), it is
// new, or it is empty; it must belong to dartup's own user, and so must the
// directory above it (or that one is sticky, like /tmp).
package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Kind names what a directory is for, and its marker file.
type Kind struct {
	// What says what the directory is, for errors ("data dir").
	What string
	// Flag is the flag that sets it, for errors ("--data").
	Flag string
	// Marker is the file dartup writes into it.
	Marker string
	// Mode is the directory's mode.
	Mode fs.FileMode
	// Known are entries of a directory made by an older dartup, without a
	// marker, that show it is one of dartup's (e.g. "jetstream", "lock").
	Known []string
}

// Data is the kind of a data dir (a server's or a runner node's): private
// to dartup's user.
var Data = Kind{What: "data dir", Flag: "--data", Marker: ".dartup-data", Mode: 0o700,
	Known: []string{"jetstream", "lock", "passwords", "runner", "serve.json", "tls", "cache", "node-id"}}

// ErrNotOurs is wrapped by Prepare's errors about a directory dartup must
// not take: someone else's, not empty and not dartup's, or under a folder
// others may change.
var ErrNotOurs = errors.New("not dartup's directory")

// Prepare makes dir (absolute) ready as kind: created when missing; when it
// exists, it must be a directory owned by this process's user, and hold
// kind's marker, or one of kind.Known, or nothing at all; the folder above
// it must belong to this user or root and not be writable by others unless
// sticky. It then sets kind.Mode and writes the marker.
func Prepare(dir string, kind Kind) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create the folder of %s %s: %w", kind.What, dir, err)
	}
	if err := checkParent(dir, kind); err != nil {
		return err
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dir, kind.Mode); err != nil {
			return fmt.Errorf("create %s %s: %w", kind.What, dir, err)
		}
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%w: %s %s is not a directory (%s)", ErrNotOurs, kind.What, dir, kind.Flag)
	default:
		if err := checkExisting(dir, st, kind); err != nil {
			return err
		}
	}
	if err := os.Chmod(dir, kind.Mode); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, kind.Marker), []byte("made by dartup; do not put anything else here\n"), 0o600)
}

// checkExisting checks an existing directory: ours, and dartup's or empty.
func checkExisting(dir string, st fs.FileInfo, kind Kind) error {
	if uid := owner(st); uid != uint32(os.Geteuid()) {
		return fmt.Errorf("%w: %s %s belongs to uid %d, not to dartup's user (uid %d), and whoever owns it controls dartup; chown it or choose another %s",
			ErrNotOurs, kind.What, dir, uid, os.Geteuid(), kind.Flag)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	for _, e := range ents {
		if e.Name() == kind.Marker {
			return nil
		}
		for _, k := range kind.Known {
			if e.Name() == k {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %s %s is not empty and was not made by dartup (no %s in it); choose a new or empty directory with %s",
		ErrNotOurs, kind.What, dir, kind.Marker, kind.Flag)
}

// checkParent checks the folder above dir: whoever may rename or replace
// entries there could swap dir for something else.
func checkParent(dir string, kind Kind) error {
	parent := filepath.Dir(dir)
	st, err := os.Stat(parent)
	if err != nil {
		return fmt.Errorf("%s %s: %w", kind.What, dir, err)
	}
	if uid := owner(st); uid != 0 && uid != uint32(os.Geteuid()) {
		return fmt.Errorf("%w: the folder above %s %s belongs to uid %d, who could replace it; choose a %s in a folder of dartup's user or root",
			ErrNotOurs, kind.What, dir, uid, kind.Flag)
	}
	if st.Mode().Perm()&0o022 != 0 && st.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("%w: the folder above %s %s is writable by others (mode %04o), who could replace it; choose a %s elsewhere",
			ErrNotOurs, kind.What, dir, st.Mode().Perm(), kind.Flag)
	}
	return nil
}

func owner(st fs.FileInfo) uint32 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Uid
	}
	return 0
}

// Inside reports whether path is dir or lies under it, after resolving
// symlinks in both (a path that does not exist yet is compared as given).
func Inside(path, dir string) bool {
	rel, err := filepath.Rel(resolve(dir), resolve(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	if r, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		return filepath.Join(r, filepath.Base(p))
	}
	return filepath.Clean(p)
}
