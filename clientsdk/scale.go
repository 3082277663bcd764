package clientsdk

import (
	"context"
	"strconv"
)

// VerbScale sets the number of instances of a daemon: dartup.api.scale.
const VerbScale = "scale"

// EventScaled is the lifecycle event of a scale: "scaled from 1 to 3 instances".
const EventScaled EventKind = "scaled"

// ScaleRequest is the request body of dartup.api.scale.
type ScaleRequest struct {
	Name string `json:"name"`
	// Instances is the number of instances the daemon runs from now on
	// (1 to MaxInstances).
	Instances int `json:"instances"`
}

// ValidateScale checks that the app whose stored spec is spec may run n
// instances: it is a daemon, n is 1 to MaxInstances, and with a fixed port
// the last instance's port (port + n - 1) is at most MaxPort. It returns an
// *Error 400 ("NotADaemon" or TypeInvalidSpec) saying what to do instead.
func ValidateScale(spec AppSpec, n int) error {
	if spec.Kind == KindLambda {
		return Errorf(400, "NotADaemon", "%s is a lambda: its workers come and go with its invocations, up to its max_workers per node (push it again with --max-workers to change that)", spec.Name)
	}
	c := specCheck{app: spec.Name}
	if err := c.intRange("instances", n, 1, MaxInstances); err != nil {
		return err
	}
	return c.port(spec.Port, n)
}

// Scale sets the number of instances of daemon name to n. The instances
// that keep running are not restarted: new ones start beside them, or the
// ones beyond n stop (the highest indexes first). The app keeps its
// version, its stopped state (a killed app runs n instances once started)
// and its history; the change is a new revision of its spec, and a
// lifecycle event EventScaled. Scale returns the spec as stored;
// WaitDeployed with its Revision waits for every instance to run. Scaling
// to the number it has changes nothing. Errors: *Error 400 for a lambda or
// n out of range (see ValidateScale), 404 for an unknown app.
func (c *Client) Scale(ctx context.Context, name string, n int) (*AppSpec, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if n < 1 || n > MaxInstances {
		return nil, Errorf(400, TypeInvalidSpec, "app %s: instances is %s; allowed 1 to %d", name, strconv.Itoa(n), MaxInstances)
	}
	var s AppSpec
	if err := c.call(ctx, VerbScale, ScaleRequest{Name: name, Instances: n}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
