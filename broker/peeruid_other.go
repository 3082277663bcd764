//go:build !linux

package broker

import "net/netip"

// localSocketOwner is unknown off Linux: apps are not told apart from other
// local clients there.
func localSocketOwner(netip.AddrPort, uint16) (uint32, bool) { return 0, false }
