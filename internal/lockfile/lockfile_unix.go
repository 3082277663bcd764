//go:build unix

// Package lockfile takes exclusive locks that last as long as the process:
// a flock on a file holding the owner's pid. The kernel drops the lock when
// the process dies, so a kill -9 leaves no stale lock.
package lockfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrHeld is wrapped by Lock's error when another process holds the lock.
var ErrHeld = errors.New("lock held by another process")

// Lock takes an exclusive, non-blocking flock on path (creating it and its
// folder) and writes our pid into it; closing the file releases it. When the
// lock is held, the error wraps ErrHeld and holder is the holder's pid as
// written in the file ("unknown" when it cannot be read).
func Lock(path string) (f *os.File, holder string, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", err
	}
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		holder = strings.TrimSpace(string(b))
		if holder == "" {
			holder = "unknown"
		}
		return nil, holder, fmt.Errorf("%w: %s", ErrHeld, path)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, "", nil
}

// Wait takes an exclusive flock on path (creating it and its folder, mode
// 0600), waiting as long as another process holds it; closing the file
// releases it. It is for short critical sections shared between processes,
// such as a read-modify-write of a file that is then replaced by a rename
// (the lock is on a separate file, which the rename does not replace).
func Wait(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
