package clientsdk

// LambdaTotals are a lambda's invocation stats summed over the nodes that host it.
type LambdaTotals struct {
	LambdaStats
	// WarmWorkers is the number of live workers over all nodes.
	WarmWorkers int `json:"warm_workers"`
	// Nodes is the number of nodes reporting.
	Nodes int `json:"nodes"`
}

// AggregateLambdaStats sums the per-node lambda status entries by app. P50 is
// the invocation-weighted mean of the nodes' medians; P99 the largest p99.
func AggregateLambdaStats(st []InstanceStatus) map[string]LambdaTotals {
	out := map[string]LambdaTotals{}
	weighted := map[string]float64{}
	for _, s := range st {
		if s.Lambda == nil {
			continue
		}
		t := out[s.App]
		l := s.Lambda
		t.Invocations += l.Invocations
		t.Errors += l.Errors
		t.ColdStarts += l.ColdStarts
		t.Throttled += l.Throttled
		t.Timeouts += l.Timeouts
		t.RefusedReplies += l.RefusedReplies
		t.P99 = max(t.P99, l.P99)
		t.WarmWorkers += s.WarmWorkers
		t.Nodes++
		weighted[s.App] += float64(l.P50) * float64(l.Invocations)
		out[s.App] = t
	}
	for app, t := range out {
		if t.Invocations > 0 {
			t.P50 = Duration(weighted[app] / float64(t.Invocations))
			out[app] = t
		}
	}
	return out
}
