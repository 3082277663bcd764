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
