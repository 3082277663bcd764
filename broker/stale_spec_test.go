package broker_test

import (
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// TestStoredSpecOutOfBounds: a lambda spec stored before the bounds existed
// (a timeout whose double overflows, a queue of MaxInt64) is hosted clamped:
// invocations through the HTTP gateway and NATS are answered, not refused by
// an overflowed deadline (504 at once) or queue capacity (429 always).
func TestStoredSpecOutOfBounds(t *testing.T) {
	r := newLambdaRig(t)
	const huge = clientsdk.Duration(1<<62 + 1<<61) // 2 × timeout wraps to a negative wait
	r.host("old", helloPkg, func(l *clientsdk.LambdaSpec) {
		l.Timeout, l.Queue, l.MaxWorkers = huge, 1<<63-1, 1<<63-1
		kw := clientsdk.Duration(1<<63 - 1)
		l.KeepWarm = &kw
	})
	start := time.Now()
	resp, body := r.do("GET", "/old", nil, nil)
	if resp.StatusCode != 200 || string(body) != "Hello, world!" {
		t.Fatalf("GET /old after %s: %d %q", time.Since(start), resp.StatusCode, body)
	}
	msg, err := r.nc.Request(clientsdk.LambdaSubject("old"), []byte("nats"), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := clientsdk.ErrorFromMsg(msg); e != nil || string(msg.Data) != "Hello, nats!" {
		t.Fatalf("lambda.old: %v %q", e, msg.Data)
	}
}
