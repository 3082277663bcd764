package lambdas_test

import (
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

var coldPidRE = regexp.MustCompile(`\(pid (\d+)\)`)

// lastColdPid is the pid of the last worker started, from the events.
func (r *rig) lastColdPid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if e := r.events[i]; e.Kind == clientsdk.EventColdStart {
			if s := coldPidRE.FindStringSubmatch(e.Message); s != nil {
				n, _ := strconv.Atoi(s[1])
				return n
			}
		}
	}
	return 0
}

// A measurement, run only with DARTUP_KILLSTORM=N (N callers calling
// back to back): the only worker of a direct lambda is killed with SIGKILL
// at random moments, and dartup's stats are compared with what the
// callers got. A caller left without an answer (the server gave its
// request to the dead worker's subscription) is uncounted, as it should
// be; a difference means records of answered requests were lost (a batch
// emptied from the in-flight file, still in the connection's buffer) or a
// record was counted whose answer never left (the file's record written,
// the answer still in the buffer). Measured with N=3 on 2 shared cores,
// 3 to 7 kills a run: at 705394e and after 7 runs of 32 differed
// (records lost: 17, 23, 8, 18; counted unanswered: 1, 1, 1); at 437d64c
// (a record and its answer in one write) 1 run of 14 (2 records lost);
// with the last two batches kept in the file (dartup skips those it got),
// 7 of 24 (counted unanswered: 4, 3, 2, 3, 1, 1; lost: 6); with records
// sent once none waits while the worker has a share (as here, one worker
// of one), 3 of 24, and 1 of 8 (counted unanswered: 1).
func TestDirectKillStormTruth(t *testing.T) {
	callers, _ := strconv.Atoi(os.Getenv("DARTUP_KILLSTORM"))
	if callers <= 0 {
		t.Skip("a measurement: set DARTUP_KILLSTORM to the number of callers")
	}
	r := newDirectRig(t)
	r.deployNative("storm", func(l *clientsdk.LambdaSpec) {
		l.MaxWorkers = 1
		l.Queue = 100
		l.Timeout = clientsdk.Duration(10 * time.Second)
	})
	r.mustInvoke("storm", "warm")
	var stop atomic.Bool
	var mu sync.Mutex
	got := map[int]uint64{}
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for !stop.Load() {
				code := r.stormCall(time.Second)
				mu.Lock()
				got[code]++
				mu.Unlock()
			}
		})
	}
	kills := r.killAtRandom(60)
	stop.Store(true)
	wg.Wait()
	r.m.Settle(time.Second)
	st, _, _ := r.m.Stats("storm")
	t.Logf("kills %d, callers got %v, stats %+v", kills, got, st)
	answered := 1 + got[200] + got[500] + got[502]
	if st.Invocations != answered || st.Errors != got[500]+got[502] {
		t.Errorf("callers got %v (and the warm-up); stats say %d invocations, %d errors; want %d and %d",
			got, st.Invocations, st.Errors, answered, got[500]+got[502])
	}
}

// killAtRandom kills the lambda's last worker started, every 20 to 50 ms,
// n times (skipping a worker killed already), and returns the kills.
func (r *rig) killAtRandom(n int) int {
	kills, last := 0, 0
	for range n {
		time.Sleep(time.Duration(20+rand.IntN(30))*time.Millisecond + time.Duration(rand.IntN(1000))*time.Microsecond)
		if pid := r.lastColdPid(); pid != 0 && pid != last && syscall.Kill(pid, syscall.SIGKILL) == nil {
			kills++
			last = pid
		}
	}
	return kills
}

// stormCall sends one request to the storm lambda and returns the code it
// got, -1 for none within d.
func (r *rig) stormCall(d time.Duration) int {
	msg, err := r.client.Request(clientsdk.LambdaSubject("storm"), []byte(`"x"`), d)
	if err != nil {
		return -1
	}
	if e := clientsdk.ErrorFromMsg(msg); e != nil {
		return e.Code
	}
	return 200
}
