package lambdas

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

// rtConnReading returns a connection whose requests' bytes are in.
func rtConnReading(in string) *rtConn {
	return &rtConn{br: bufio.NewReaderSize(strings.NewReader(in), rtReadBuffer)}
}

// A body's buffer grows with the bytes that came, not with the length the
// request claims: a worker claiming 6 MiB on many connections and sending
// nothing must not cost the server 6 MiB each.
func TestRTReadBodyGrowsWithTheData(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  rtRequest
		in   string
	}{
		{"Content-Length", rtRequest{length: MaxResponseBytes}, "0123456789"},
		{"chunk size", rtRequest{length: -1, chunked: true}, "600000\r\n0123456789"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rtConnReading(tc.in)
			if _, _, err := c.readBody(&tc.req, MaxResponseBytes); err == nil {
				t.Fatal("a body cut short was read")
			}
			if got := cap(c.body); got > 2*rtKeepBuffer {
				t.Fatalf("10 bytes of a body took a %d-byte buffer", got)
			}
		})
	}
}

// A chunked body over the limit keeps its first bytes (an error body's
// message is made of them).
func TestRTReadChunkedOverTheLimitKeepsItsStart(t *testing.T) {
	c := rtConnReading("4\r\nabcd\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
	req := rtRequest{length: -1, chunked: true}
	body, tooLarge, err := c.readBody(&req, 10)
	if err != nil || !tooLarge || string(body) != "abcd012345" || !req.close {
		t.Fatalf("got %q tooLarge=%v close=%v err=%v", body, tooLarge, req.close, err)
	}
}

// A stranger is closed to make room only once rtMaxStrangers are open and
// the oldest has had rtStrangerGrace to name a worker, or when
// rtMaxAllStrangers are open whatever their age.
func TestCloseOldestStranger(t *testing.T) {
	for _, tc := range []struct {
		open   int
		oldest time.Duration
		want   bool
	}{
		{rtMaxStrangers - 1, time.Hour, false},
		{rtMaxStrangers, rtStrangerGrace, true},
		{rtMaxStrangers, rtStrangerGrace - time.Millisecond, false},
		{rtMaxAllStrangers - 1, 0, false},
		{rtMaxAllStrangers, 0, true},
	} {
		if got := closeOldestStranger(tc.open, tc.oldest); got != tc.want {
			t.Errorf("closeOldestStranger(%d, %s) = %v, want %v", tc.open, tc.oldest, got, tc.want)
		}
	}
}
