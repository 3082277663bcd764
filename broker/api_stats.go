package broker

import (
	"context"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/micro"
)

// endpointStats is the micro service's StatsHandler: the info endpoint's
// stats data holds every lambda's totals (from the status bucket).
func (a *api) endpointStats(e *micro.Endpoint) any {
	if e.Name != clientsdk.VerbInfo {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := readAll[clientsdk.InstanceStatus](ctx, a.status)
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	return map[string]any{"lambdas": clientsdk.AggregateLambdaStats(st)}
}
