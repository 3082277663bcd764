package proc

import (
	"fmt"
	"strings"
	"testing"
)

// The splitter gives the same lines whatever pieces the stream arrives in:
// every way of cutting each input into writes of 1, 2, 3, 7 and 4096 bytes,
// and the whole at once.
func TestLineSplitter(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"empty stream", "", nil},
		{"one line", "hello\n", []string{"hello"}},
		{"no newline at the end", "a\nb", []string{"a", "b"}},
		{"empty lines", "\n\na\n\n", []string{"", "", "a", ""}},
		{"carriage return kept", "a\r\n", []string{"a\r"}},
		{"exactly the limit", x(MaxLineBytes) + "\nb\n", []string{x(MaxLineBytes), "b"}},
		{"one over the limit", x(MaxLineBytes+1) + "\n", []string{x(MaxLineBytes), "x"}},
		{"twice the limit and more", x(2*MaxLineBytes+5) + "\ny", []string{x(MaxLineBytes), x(MaxLineBytes), x(5), "y"}},
		{"the limit without newline", x(MaxLineBytes), []string{x(MaxLineBytes)}},
	}
	for _, c := range cases {
		for _, size := range []int{1, 2, 3, 7, 4096, len(c.in) + 1} {
			t.Run(fmt.Sprintf("%s/writes of %d", c.name, size), func(t *testing.T) {
				var got []string
				s := lineSplitter{fn: func(l []byte) { got = append(got, string(l)) }}
				for in := c.in; len(in) > 0; {
					n := min(size, len(in))
					s.write([]byte(in[:n]))
					in = in[n:]
				}
				s.flush()
				if len(got) != len(c.want) {
					t.Fatalf("got %d lines %q, want %d", len(got), short(got), len(c.want))
				}
				for i := range got {
					if got[i] != c.want[i] {
						t.Fatalf("line %d: got %q, want %q", i, short(got[i:i+1]), short(c.want[i:i+1]))
					}
				}
				if s.carry != nil {
					t.Fatalf("a buffer of %d bytes is kept after the end", cap(s.carry))
				}
			})
		}
	}
}

// Idle at a line's end, a stream holds no buffer.
func TestLineSplitterIdleHoldsNothing(t *testing.T) {
	s := lineSplitter{fn: func([]byte) {}}
	s.write([]byte("partial"))
	if len(s.carry) != len("partial") {
		t.Fatalf("unfinished line not kept: %q", s.carry)
	}
	s.write([]byte(" line\nnext line\n"))
	if s.carry != nil {
		t.Fatalf("%d bytes kept after a complete line", cap(s.carry))
	}
}

func short(ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		if len(l) > 20 {
			l = fmt.Sprintf("%s…(%d bytes)", l[:10], len(l))
		}
		out[i] = l
	}
	return out
}
