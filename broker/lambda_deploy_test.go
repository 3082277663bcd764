package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
)

// Requests sent in a tight loop while a lambda is deployed are all
// answered: before the runner subscribes, raw requests get "no responders"
// at once and clientsdk's Invoke a 503 that says why; after, the result. No
// request is lost (a lost one would wait for its timeout), round after round.
func TestLambdaRequestsDuringDeploy(t *testing.T) {
	r := newLambdaRig(t)
	bin := testutil.BuildGo(t, helloPkg)
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithConn(r.nc))
	if err != nil {
		t.Fatal(err)
	}
	const rounds, callers, wait = 15, 4, 10 * time.Second
	var answered, refused, lost, other atomic.Int64
	for round := range rounds {
		name := fmt.Sprintf("deploy%d", round)
		spec := r.put(name, clientsdk.KindLambda, nil)
		var ok atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), wait)
					var err error
					if i%2 == 0 { // as the stock `nats req` does
						var m *nats.Msg
						if m, err = r.nc.RequestWithContext(ctx, clientsdk.LambdaSubject(name), []byte(`{"name":"x"}`)); err == nil {
							if e := clientsdk.ErrorFromMsg(m); e != nil {
								err = e
							}
						}
					} else {
						_, err = c.Invoke(ctx, name, []byte(`{"name":"x"}`))
					}
					cancel()
					var e *clientsdk.Error
					switch {
					case err == nil:
						ok.Add(1)
						answered.Add(1)
					case errors.Is(err, nats.ErrNoResponders) || errors.As(err, &e) && e.Code == 503 && e.Type == "NoRunner":
						refused.Add(1)
					case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
						lost.Add(1)
					default:
						other.Add(1)
						t.Errorf("round %d: %v", round, err)
					}
				}
			})
		}
		// Deploy while the callers are refused: their next requests race
		// the runner's subscription.
		before := refused.Load()
		testutil.WaitFor(t, 10*time.Second, "a request refused before the deployment", func() bool { return refused.Load() > before })
		if err := r.m.Deploy(spec, lambdas.Command{Path: bin}); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 30*time.Second, "an answer from "+name, func() bool { return ok.Load() > int64(callers) })
		close(stop)
		wg.Wait()
		r.m.Undeploy(name)
	}
	t.Logf("%d answered, %d refused at once (not hosted yet), %d lost, %d other", answered.Load(), refused.Load(), lost.Load(), other.Load())
	if lost.Load() != 0 {
		t.Fatalf("%d requests were lost (no answer within %s)", lost.Load(), wait)
	}
}
