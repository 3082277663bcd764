//go:build linux

package proc

import (
	"os"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// 52 fields as Linux 6 writes them; utime 1234, stime 66, starttime
	// 987654, rss 2048 pages.
	tail := " S 4242 4242 4242 0 -1 4194560 1000 0 0 0 1234 66 0 0 20 0 12 0 987654 1234567890 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	cases := []struct {
		name string
		line string
		want procStat
		ok   bool
	}{
		{"plain", "4243 (dartup)" + tail, procStat{ppid: 4242, ticks: 1300, startTime: 987654, rssPages: 2048}, true},
		{"spaces and parentheses in the name", "4243 (a) b (c d))" + tail, procStat{ppid: 4242, ticks: 1300, startTime: 987654, rssPages: 2048}, true},
		{"cut short", "4243 (x) S 1 2 3", procStat{}, false},
		{"no name", "4243 x S 1", procStat{}, false},
		{"empty", "", procStat{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := parseProcStat([]byte(c.line))
			if got != c.want || ok != c.ok {
				t.Fatalf("got %+v %v, want %+v %v", got, ok, c.want, c.ok)
			}
		})
	}
}

// The sweep and the usage samples read many stat lines: one costs the small
// allocations of its path, not a copy of the line and of its 52 fields.
func TestReadProcStatAllocations(t *testing.T) {
	pid := os.Getpid()
	st, ok := readProcStat(pid)
	if !ok || st.ppid != os.Getppid() || st.startTime == 0 || st.rssPages == 0 {
		t.Fatalf("own stat %+v %v (parent %d)", st, ok, os.Getppid())
	}
	if n := testing.AllocsPerRun(100, func() { readProcStat(pid) }); n > 3 {
		t.Fatalf("%v allocations per read", n)
	}
}
