package broker

import (
	"context"
	"fmt"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/micro"
)

// scale sets a daemon's number of instances (clientsdk.ValidateScale says
// which numbers). It writes the spec again with compare-and-set, as kill
// and start do: the same version, so the instances that keep running are
// not replaced (the runners' rollouts compare versions, and the number of
// instances does not change how one instance runs), while the service,
// the versions kept and the stopped state stay as they were. Scaling to
// the current number writes nothing. It answers the spec as stored.
func (a *api) scale(ctx context.Context, req micro.Request) (any, error) {
	var r clientsdk.ScaleRequest
	if err := clientsdk.DecodeRequest(req.Data(), &r); err != nil {
		return nil, err
	}
	if err := clientsdk.ValidateName(r.Name); err != nil {
		return nil, err
	}
	cur, _, err := a.getSpec(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	if err := clientsdk.ValidateScale(*cur, r.Instances); err != nil {
		return nil, err
	}
	from := cur.WithDefaults().Instances
	if from == r.Instances {
		return cur, nil
	}
	// The spec may change between the read above and the write (a push
	// turning the app into a lambda): the check runs again on what is
	// written, and a refusal then leaves the spec as it is.
	var refused error
	spec, err := a.updateSpec(ctx, r.Name, func(s *clientsdk.AppSpec) {
		if refused = clientsdk.ValidateScale(*s, r.Instances); refused == nil {
			from, s.Instances = s.WithDefaults().Instances, r.Instances
		}
	})
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return nil, refused
	}
	a.publishEvent(ctx, r.Name, clientsdk.EventScaled, fmt.Sprintf("scaled from %d to %d instances", from, r.Instances))
	a.logger.Info("app scaled", "app", r.Name, "from", from, "to", r.Instances, "revision", spec.Revision)
	return spec, nil
}
