// Command pubsub is a test app for dartup's app messaging, written with
// clientsdk/app. Each instance subscribes to the events "trigger" and "msg".
// A trigger {"publisher": I, "n": N} makes instance I publish N "msg" events
// numbered on from the last burst. Every instance counts the "msg" events it receives per
// sender and whether they came in order, and answers requests on
// "dartup.app.APP.stats.INDEX" (inside the app's own namespace, which its
// scoped credentials allow) with those counts as JSON.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk/app"
	"github.com/nats-io/nats.go"
)

type stats struct {
	Instance  int            `json:"instance"`
	Count     map[string]int `json:"count"`
	InOrder   bool           `json:"in_order"`
	Dups      int            `json:"dups"`
	Published int            `json:"published"`
	// APIError is what a control API call answered this worker ("" if it worked).
	APIError string `json:"api_error"`
}

func main() {
	ctx := context.Background()
	a, err := app.Connect(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	in := a.Instance()
	var mu sync.Mutex
	st := stats{Instance: in.Index, Count: map[string]int{}, InOrder: true}
	next := map[string]int{}

	msgs, err := a.Subscribe(ctx, "msg")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	triggers, err := a.Subscribe(ctx, "trigger")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Apps must not reach the control API; record what trying it gives.
	if _, err := a.NATS().Request("dartup.api.list", nil, 500*time.Millisecond); err != nil {
		st.APIError = err.Error()
	}
	_, err = a.NATS().Subscribe("dartup.app."+in.App+".stats."+strconv.Itoa(in.Index), func(m *nats.Msg) {
		mu.Lock()
		b, _ := json.Marshal(st)
		mu.Unlock()
		_ = m.Respond(b)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = a.NATS().Flush()
	fmt.Println("subscribed", in.ID())

	go func() {
		for {
			m, err := msgs.Next(ctx)
			if err != nil {
				return
			}
			var seq int
			_ = m.Decode(&seq)
			mu.Lock()
			if seq < next[m.From] {
				st.Dups++
			} else if seq != next[m.From] {
				st.InOrder = false
			}
			next[m.From] = seq + 1
			st.Count[m.From]++
			mu.Unlock()
		}
	}()
	for {
		m, err := triggers.Next(ctx)
		if err != nil {
			return
		}
		var t struct {
			Publisher int `json:"publisher"`
			N         int `json:"n"`
		}
		if m.Decode(&t) != nil || t.Publisher != in.Index {
			continue
		}
		mu.Lock()
		first := st.Published
		mu.Unlock()
		for i := first; i < first+t.N; i++ {
			if err := a.Publish(ctx, "msg", i); err != nil {
				fmt.Fprintln(os.Stderr, "publish:", err)
			}
		}
		_ = a.NATS().Flush()
		mu.Lock()
		st.Published += t.N
		mu.Unlock()
		fmt.Println("published " + strconv.Itoa(t.N))
	}
}
