//go:build linux

package broker

import (
	"bufio"
	"encoding/hex"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// localSocketOwner returns the uid of the process that owns the local TCP
// socket bound to addr: for a client on this machine, the user it runs as.
// It reads /proc/net/tcp and /proc/net/tcp6 (as identd does); known is false
// when neither lists addr or they cannot be read.
func localSocketOwner(addr netip.AddrPort) (uid uint32, known bool) {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if uid, ok := socketOwnerIn(f, addr); ok {
			return uid, true
		}
	}
	return 0, false
}

func socketOwnerIn(path string, addr netip.AddrPort) (uint32, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		local, ok := parseProcAddr(fields[1])
		if !ok || local != addr {
			continue
		}
		uid, err := strconv.ParseUint(fields[7], 10, 32)
		return uint32(uid), err == nil
	}
	return 0, false
}

// parseProcAddr parses an address of /proc/net/tcp{,6}: the IP as 32-bit
// words in host (little-endian) order, then ':' and the port in hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	b, err := hex.DecodeString(ipHex)
	port, err2 := strconv.ParseUint(portHex, 16, 16)
	if !ok || err != nil || err2 != nil || (len(b) != 4 && len(b) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	ip, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
}
