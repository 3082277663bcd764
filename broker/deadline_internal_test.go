package broker

import (
	"strconv"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/micro"
)

func TestRequestDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	hdr := func(v string) micro.Headers { return micro.Headers{clientsdk.HeaderDeadline: []string{v}} }
	ms := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) }
	for _, c := range []struct {
		name string
		h    micro.Headers
		want time.Duration
	}{
		{"no header", nil, maxRequestTime},
		{"garbage", hdr("soon"), maxRequestTime},
		{"caller waits 10 s", hdr(ms(10 * time.Second)), 10*time.Second - 250*time.Millisecond},
		{"caller waits longer than the bound", hdr(ms(5 * time.Minute)), maxRequestTime},
		{"caller already gone", hdr(ms(-time.Second)), -time.Second - 250*time.Millisecond},
	} {
		if got := requestDeadline(c.h, now).Sub(now); got != c.want {
			t.Errorf("%s: deadline in %s, want %s", c.name, got, c.want)
		}
	}
}
