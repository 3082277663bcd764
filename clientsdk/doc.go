// Package clientsdk is dartup's public contract and Go client.
//
// It holds the wire types (AppSpec, InstanceStatus, AppSummary, ServerInfo, Node),
// the names of every subject, bucket and stream dartup uses, the typed *Error that
// the control API and lambda invocations answer with, and a Client that drives a
// dartup server over NATS:
//
//	c, err := clientsdk.Connect(ctx, clientsdk.WithURL("nats://127.0.0.1:4222"))
//	if err != nil { ... }
//	defer c.Close()
//	apps, err := c.List(ctx)
//
// The package imports nats.go only, so that tools and apps can depend on it without
// pulling in the server.
package clientsdk
