package runner

import "testing"

func TestPortRange(t *testing.T) {
	for _, c := range []struct{ ephemeral, lo, hi int }{
		{32768, 10000, 32767},
		{49152, 10000, 49151},
		{10500, 0, 0}, // too little room below: the kernel chooses
		{1024, 0, 0},
	} {
		if lo, hi := portRange(c.ephemeral); lo != c.lo || hi != c.hi {
			t.Errorf("portRange(%d) = %d-%d, want %d-%d", c.ephemeral, lo, hi, c.lo, c.hi)
		}
	}
}
