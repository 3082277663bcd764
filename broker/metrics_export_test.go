package broker

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
)

// DescribedMetrics returns the names of the metrics dartup's collectors
// describe (the go_* and process_* ones aside), whether or not they have
// series now.
func DescribedMetrics() map[string]bool {
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		(&stateCollector{}).Describe(ch)
		(&natsCollector{}).Describe(ch)
		h := newHTTPMetrics()
		h.requests.Describe(ch)
		h.duration.Describe(ch)
		close(ch)
	}()
	name := regexp.MustCompile(`fqName: "([a-z0-9_]+)"`)
	out := map[string]bool{}
	for d := range ch {
		if m := name.FindStringSubmatch(d.String()); m != nil {
			out[m[1]] = true
		}
	}
	return out
}
