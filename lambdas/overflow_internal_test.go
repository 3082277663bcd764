package lambdas

import "testing"

// Relay admission holds both bounds and leaves the counts as they were
// when it refuses; relayDone undoes an admission; nothing is admitted once
// Close began.
func TestAcquireRelayBounds(t *testing.T) {
	var m Manager
	inv := &invocation{event: make([]byte, 100)}
	for _, c := range []struct {
		name          string
		relays, bytes int64
		closed, want  bool
	}{
		{"room", 0, 0, false, true},
		{"at the count cap", maxRelays, 0, false, false},
		{"over the byte cap", 0, maxRelayBytes - 50, false, false},
		{"Close began", 0, 0, true, false},
	} {
		m.relays, m.relayBytes = int(c.relays), c.bytes
		m.relaysClosed = c.closed
		got := m.acquireRelay(inv)
		wantRelays, wantBytes := c.relays, c.bytes
		if c.want {
			wantRelays, wantBytes = c.relays+1, c.bytes+100
		}
		if got != c.want || int64(m.relays) != wantRelays || m.relayBytes != wantBytes {
			t.Fatalf("%s: admitted %v with %d relays, %d bytes; want %v, %d, %d", c.name, got, m.relays, m.relayBytes, c.want, wantRelays, wantBytes)
		}
		if got {
			m.relayDone(inv)
			if int64(m.relays) != c.relays || m.relayBytes != c.bytes {
				t.Fatalf("%s: relayDone left %d relays, %d bytes", c.name, m.relays, m.relayBytes)
			}
		}
	}
}
