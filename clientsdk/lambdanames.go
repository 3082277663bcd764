package clientsdk

// LambdaHostedPrefix is the subject prefix on which every runner hosting a
// lambda answers presence probes: "dartup.lambda.hosted.NAME". The broker's
// "lambda.*" catch-all asks it to tell "no runner hosts NAME" (503) from "a
// runner will answer" without replying twice.
const LambdaHostedPrefix = "dartup.lambda.hosted"

// LambdaHostedSubject returns the presence subject of lambda name:
// "dartup.lambda.hosted.NAME". A request on it gets a reply (the node id)
// from each runner hosting name, and "no responders" when none does.
func LambdaHostedSubject(name string) string { return LambdaHostedPrefix + "." + name }
