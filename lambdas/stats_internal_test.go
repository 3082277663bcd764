package lambdas

import (
	"slices"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

func TestDurationBucket(t *testing.T) {
	last := len(clientsdk.LambdaDurationBounds)
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {time.Millisecond, 0}, {time.Millisecond + 1, 1}, {2500 * time.Microsecond, 1}, {time.Second, 9},
		{900 * time.Second, last - 1}, {901 * time.Second, last}, {time.Hour, last},
	} {
		if got := durationBucket(c.d); got != c.want {
			t.Errorf("durationBucket(%s) = %d, want %d", c.d, got, c.want)
		}
	}
}

// The histogram counts what record sees, cumulatively by bound, with the
// sum in seconds; throttled requests are not in it, and recording does
// not allocate.
func TestStatsHistogram(t *testing.T) {
	var s stats
	for _, d := range []time.Duration{500 * time.Microsecond, 3 * time.Millisecond, 3 * time.Millisecond, 2 * time.Second, time.Hour} {
		s.record(d, nil)
	}
	s.record(time.Second, clientsdk.Errorf(429, TypeThrottled, "full"))
	s.record(40*time.Millisecond, clientsdk.Errorf(504, TypeTimedOut, "late"))
	got := s.snapshot()
	want := []uint64{1, 1, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5}
	if !slices.Equal(got.DurationBuckets, want) || got.Invocations != 6 || got.Throttled != 1 || got.Timeouts != 1 {
		t.Fatalf("buckets %v (want %v), stats %+v", got.DurationBuckets, want, got)
	}
	if sum := 0.0005 + 0.003 + 0.003 + 2 + 3600 + 0.04; got.DurationSum < sum-1e-9 || got.DurationSum > sum+1e-9 {
		t.Fatalf("sum %v, want %v", got.DurationSum, sum)
	}
	if n := testing.AllocsPerRun(1000, func() { s.record(7*time.Millisecond, nil) }); n != 0 {
		t.Fatalf("record allocates %v times", n)
	}
}
