//go:build !linux

package broker

import (
	"errors"
	"os"
)

// allocate is not available here: the caller writes zeros.
func allocate(*os.File, int64) error { return errors.New("no fallocate") }
