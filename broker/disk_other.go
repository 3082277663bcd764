//go:build !unix

package broker

// diskSpace cannot read the disk here: -1, -1.
func diskSpace(string) (avail, total int64) { return -1, -1 }
