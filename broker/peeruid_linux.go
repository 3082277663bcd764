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

// localSocketOwner returns the uid of the process that owns the client end
// of a live TCP connection from client to a loopback server port: for a
// client on this machine, the user it runs as. It reads /proc/net/tcp and
// /proc/net/tcp6 (as identd does) and matches the whole connection: local
// address client, remote port serverPort on a loopback address, state
// ESTABLISHED and a real socket (inode) — a TIME_WAIT leftover, which the
// kernel lists with uid 0, never matches. known is false when nothing does.
func localSocketOwner(client netip.AddrPort, serverPort uint16) (uid uint32, known bool) {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if uid, ok := socketOwnerIn(f, client, serverPort); ok {
			return uid, true
		}
	}
	return 0, false
}

// tcpEstablished is the state column of an established connection.
const tcpEstablished = "01"

func socketOwnerIn(path string, client netip.AddrPort, serverPort uint16) (uint32, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpEstablished || fields[9] == "0" {
			continue
		}
		local, ok1 := parseProcAddr(fields[1])
		remote, ok2 := parseProcAddr(fields[2])
		if !ok1 || !ok2 || local != client || remote.Port() != serverPort || !remote.Addr().IsLoopback() {
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
