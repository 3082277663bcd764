//go:build linux

package broker

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// The owner of a client's socket is found on its whole connection: a
// TIME_WAIT leftover on the same local address (listed first, uid 0, no
// inode), a connection to another port, or a listening socket never match.
func TestSocketOwnerMatchesTheWholeConnection(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C40 0100007F:107E 06 00000000:00000000 03:00000F2B 00000000     0        0 0 3 0000000000000000
   1: 0100007F:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   2: 0100007F:9C40 0100007F:2000 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 20 4 0 10 -1
   3: 0100007F:9C40 0100007F:107E 01 00000000:00000000 00:00000000 00000000 59500        0 3333 1 0000000000000000 20 4 0 10 -1
   4: 0100007F:107E 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 20 4 0 10 -1
`
	path := filepath.Join(t.TempDir(), "tcp")
	if err := os.WriteFile(path, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddrPort("127.0.0.1:40000") // 0x9C40
	uid, ok := socketOwnerIn(path, client, 4222)         // 0x107E
	if !ok || uid != 59500 {
		t.Fatalf("owner = %d, %v; want 59500 (the established connection to 4222)", uid, ok)
	}
	if _, ok := socketOwnerIn(path, client, 9999); ok {
		t.Fatal("matched a connection to another port")
	}
}
