package broker

import (
	"context"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/micro"
)

// routes answers the routes verb: the gateway's route table as the stored
// apps make it, in match order, with each daemon's ready instances.
func (a *api) routes(ctx context.Context, _ micro.Request) (any, error) {
	specs, err := a.readSpecs(ctx)
	if err != nil {
		return nil, err
	}
	statuses, err := readAll[clientsdk.InstanceStatus](ctx, a.status)
	if err != nil {
		return nil, err
	}
	ready := map[string]int{}
	for _, st := range statuses {
		if routable(st) {
			ready[st.App]++
		}
	}
	apps := make(map[string]clientsdk.AppSpec, len(specs))
	for _, s := range specs {
		apps[s.Name] = s
	}
	return clientsdk.RoutesResponse{Routes: buildRoutes(apps).list(ready)}, nil
}
