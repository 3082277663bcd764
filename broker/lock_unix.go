//go:build unix

package broker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dartup/dartup/internal/lockfile"
)

// ErrDataDirInUse is returned by Start when another process holds the data dir.
var ErrDataDirInUse = errors.New("data dir in use")

// lockDataDir locks DIR/lock for as long as this process runs.
func lockDataDir(dir string) (*os.File, error) {
	f, holder, err := lockfile.Lock(filepath.Join(dir, "lock"))
	if errors.Is(err, lockfile.ErrHeld) {
		return nil, fmt.Errorf("%w: %s is used by another dartup (pid %s); stop it, or give this one its own --data DIR", ErrDataDirInUse, dir, holder)
	}
	return f, err
}

// lockPasswordFile waits for the lock of the password file at path: an
// exclusive flock on PATH.lock (DATA/passwords.lock), held by writers for
// their read-modify-write so that concurrent `dartup password` processes do
// not lose each other's changes. It returns the function that releases it.
func lockPasswordFile(path string) (unlock func(), err error) {
	f, err := lockfile.Wait(path + ".lock")
	if err != nil {
		return nil, err
	}
	return func() { _ = f.Close() }, nil
}
