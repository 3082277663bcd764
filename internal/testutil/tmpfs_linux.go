package testutil

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TmpfsDir mounts a tmpfs of size bytes on a new directory and returns it:
// a small or full disk for tests. It is unmounted when the test ends (after
// the cleanups registered later, such as stopping a server that uses it).
// Mounting needs root: elsewhere the test is skipped, and fails in CI.
func TmpfsDir(t testing.TB, size int64) string {
	t.Helper()
	dir := TempDir(t)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0711", size)); err != nil {
		SkipOrFail(t, "mounting a tmpfs needs root (CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount the tmpfs at %s: %v", dir, err)
		}
	})
	return dir
}

// FillDisk writes a file at path until the disk holding it has at most
// leave bytes free, and returns its size.
func FillDisk(t testing.TB, path string, leave int64) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(path, &st); err != nil {
			t.Fatal(err)
		}
		free := int64(st.Bavail) * int64(st.Bsize)
		if free <= leave {
			break
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), free-leave)]); err != nil {
			break // the disk is full
		}
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
