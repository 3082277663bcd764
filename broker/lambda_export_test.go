package broker

import "context"

// StartLambdasForTest starts b's lambda router (the "lambda.*" catch-all and
// the apps cache), as Broker.Start does once it is hooked in.
func StartLambdasForTest(b *Broker) error {
	_, err := b.startLambdas(context.Background())
	return err
}
