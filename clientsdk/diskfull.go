package clientsdk

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/dartup/dartup/internal/bytesize"
	"github.com/nats-io/nats.go/jetstream"
)

// TypeDiskFull: the server's store or data disk is full (507, as WebDAV's
// Insufficient Storage). The message gives the free space and what to do.
const TypeDiskFull = "DiskFull"

// ErrDiskFull matches, with errors.Is, a 507 disk-full *Error.
var ErrDiskFull = &Error{Code: 507}

// jsInsufficientResources is JetStream's error code for a store at its
// limit (JSInsufficientResourcesErr).
const jsInsufficientResources = 10023

// IsStoreFull reports whether err is JetStream refusing a write because its
// store is at its limit or its disk is full.
func IsStoreFull(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jsInsufficientResources {
		return true
	}
	return errors.Is(err, syscall.ENOSPC) || err != nil && strings.Contains(err.Error(), "no space left on device")
}

// Full reports whether the disk or the store has no room left for n more
// bytes, or the store cannot write at all.
func (d *DiskUsage) Full(n int64) bool {
	if d == nil {
		return false
	}
	return d.WriteError != "" || (d.StoreMax > 0 && d.StoreUsed+n > d.StoreMax) || (d.Free >= 0 && d.Free < n)
}

// DiskFullError is the 507 error for a write that did not fit on server:
// how full the store and the disk are, and what to do.
func (d *DiskUsage) DiskFullError(server, what string) *Error {
	var b strings.Builder
	fmt.Fprintf(&b, "disk full on server %s: %s did not fit; the store holds %s of its %s limit (--max-store)",
		server, what, bytesize.Format(d.StoreUsed), bytesize.Format(d.StoreMax))
	if d.Free >= 0 {
		fmt.Fprintf(&b, " and the data disk has %s free of %s", bytesize.Format(d.Free), bytesize.Format(d.Total))
	}
	if d.WriteError != "" {
		fmt.Fprintf(&b, "; the store cannot write (%s) and recovers by itself once space is free", d.WriteError)
	}
	b.WriteString(". Remove apps you no longer need (dartup remove NAME), free space on that disk, or raise --max-store")
	return &Error{Code: 507, Type: TypeDiskFull, Message: b.String()}
}
