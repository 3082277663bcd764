package clientsdk

// LambdaHostedPrefix is the subject prefix on which every runner hosting a
// lambda answers presence probes: "dartup.lambda.hosted.NAME". The brokers
// ask it, after a request on lambda.NAME found no responders, to tell "no
// runner hosts NAME" from "a runner hosts it now" (then the request is
// sent again), and the async dispatcher asks it before it pulls events.
const LambdaHostedPrefix = "dartup.lambda.hosted"

// LambdaHostedSubject returns the presence subject of lambda name:
// "dartup.lambda.hosted.NAME". A request on it gets a reply (the node id)
// from each runner hosting name, and "no responders" when none does.
func LambdaHostedSubject(name string) string { return LambdaHostedPrefix + "." + name }

// LambdaWhyPrefix is the subject prefix on which the dartup servers say why
// a request on lambda.NAME found no responders: "dartup.lambda.why.NAME".
const LambdaWhyPrefix = "dartup.lambda.why"

// LambdaWhySubject returns the subject that says why lambda name took no
// request: "dartup.lambda.why.NAME". A request on it (any body) is answered
// with the error an invocation gets — *Error 404 NotFound (no such app),
// 403 NotALambda (a daemon), 503 Stopped (killed), 502 Runtime.StartError
// (no node can start it, with the cause), 503 NoRunner (no node hosts it,
// with the reason when one is known) — or with an empty reply when a runner
// hosts name now: the request may be sent again.
func LambdaWhySubject(name string) string { return LambdaWhyPrefix + "." + name }
