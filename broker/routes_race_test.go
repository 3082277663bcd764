package broker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// Two pushes at once of lambdas that declare the same route: one gets it,
// the other 409 RouteTaken, every time (the check and the write are one
// step, and the next check sees the write).
func TestConcurrentPushesCannotShareARoute(t *testing.T) {
	b := testutil.StartBroker(t)
	ctx := context.Background()
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for round := range 20 {
		route := clientsdk.FunctionRoute{Method: "GET", Path: fmt.Sprintf("/race%d", round)}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() {
				s := clientsdk.AppSpec{Name: fmt.Sprintf("race%d-%d", round, i), Kind: clientsdk.KindLambda,
					Runtime: clientsdk.RuntimeCommand, Command: []string{"x"},
					Lambda: &clientsdk.LambdaSpec{Routes: []clientsdk.FunctionRoute{route}}}
				_, errs[i] = c.Push(ctx, s, "", nil)
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if e, isErr := clientsdk.AsError(err); !isErr || e.Code != 409 {
				t.Fatalf("round %d: %v, want 409 RouteTaken", round, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of two pushes of %s succeeded (%v), want exactly one", round, ok, route, errs)
		}
	}
}
