package clientsdk

import (
	"strconv"
	"strings"
)

// ServiceName is the name of the control API's micro service, as shown by
// `nats micro ls`.
const ServiceName = "dartup"

// APIPrefix is the subject prefix of the control API: requests go to
// "dartup.api.VERB".
const APIPrefix = "dartup.api"

// Control API verbs. Each is an endpoint of the "dartup" micro service on
// the subject "dartup.api.VERB".
const (
	VerbList     = "list"     // dartup.api.list
	VerbInfo     = "info"     // dartup.api.info
	VerbDescribe = "describe" // dartup.api.describe
	VerbPush     = "push"     // dartup.api.push
	VerbKill     = "kill"     // dartup.api.kill
	VerbStart    = "start"    // dartup.api.start
	VerbRestart  = "restart"  // dartup.api.restart
	VerbRemove   = "remove"   // dartup.api.remove
	VerbNodes    = "nodes"    // dartup.api.nodes
	VerbRoutes   = "routes"   // dartup.api.routes
	VerbHistory  = "history"  // dartup.api.history
	VerbRollback = "rollback" // dartup.api.rollback
)

// JetStream assets created by the broker.
const (
	// ArtifactsBucket is the object store holding pushed artifacts, one object
	// per content digest ("sha256/HEX"), shared by the apps that use it.
	ArtifactsBucket = "DARTUP_ARTIFACTS"
	// AppsBucket is the KV bucket of desired state: key APP, value AppSpec JSON.
	AppsBucket = "DARTUP_APPS"
	// RevisionsBucket is the KV bucket of the versions each app keeps: key
	// APP.VERSION (see RevisionKey), value the AppSpec as stored for that
	// version; the last AppSpec.History versions of each app.
	RevisionsBucket = "DARTUP_REVISIONS"
	// NodesBucket is the KV bucket of live runner nodes: key NODE, value Node
	// JSON, refreshed by heartbeat and expired by per-key TTL.
	NodesBucket = "DARTUP_NODES"
	// PlacementBucket is the KV bucket of instance claims: key APP.INDEX,
	// value Claim JSON, written with compare-and-set.
	PlacementBucket = "DARTUP_PLACEMENT"
	// StatusBucket is the KV bucket of instance status: key APP.INDEX, value
	// InstanceStatus JSON.
	StatusBucket = "DARTUP_STATUS"
	// LogsStream holds worker output on "dartup.logs.APP.INDEX.{out,err}".
	LogsStream = "DARTUP_LOGS"
	// EventsStream holds lifecycle events on "dartup.events.APP.KIND".
	EventsStream = "DARTUP_EVENTS"
)

// LogsSubjects is the subject filter of LogsStream: "dartup.logs.>".
const LogsSubjects = "dartup.logs.>"

// EventsSubjects is the subject filter of EventsStream: "dartup.events.>".
const EventsSubjects = "dartup.events.>"

// LambdaPrefix is the subject prefix of lambda invocations: "lambda.NAME".
const LambdaPrefix = "lambda"

// LambdaQueueGroup is the queue group every runner hosting a lambda joins, so
// that exactly one runner takes each request.
const LambdaQueueGroup = "dartup-lambda"

// APISubject returns the control API subject of verb: "dartup.api.VERB".
func APISubject(verb string) string { return APIPrefix + "." + verb }

// LambdaSubject returns the invocation subject of lambda name: "lambda.NAME".
func LambdaSubject(name string) string { return LambdaPrefix + "." + name }

// LogSubject returns the subject of one output stream of one instance:
// "dartup.logs.APP.INDEX.out" or "dartup.logs.APP.INDEX.err".
func LogSubject(app string, instance int, stream string) string {
	return "dartup.logs." + app + "." + strconv.Itoa(instance) + "." + stream
}

// LogFilter returns the subject filter selecting the logs of app, or of one
// instance when instance >= 0: "dartup.logs.APP.>" or "dartup.logs.APP.INDEX.*".
func LogFilter(app string, instance int) string {
	if instance < 0 {
		return "dartup.logs." + app + ".>"
	}
	return "dartup.logs." + app + "." + strconv.Itoa(instance) + ".*"
}

// EventSubject returns the subject of a lifecycle event: "dartup.events.APP.KIND".
func EventSubject(app string, kind EventKind) string {
	return "dartup.events." + app + "." + string(kind)
}

// EventFilter returns the subject filter of all events of app: "dartup.events.APP.*".
func EventFilter(app string) string { return "dartup.events." + app + ".*" }

// InstanceKey returns the placement and status key of one instance: "APP.INDEX".
func InstanceKey(app string, instance int) string { return app + "." + strconv.Itoa(instance) }

// ParseInstanceKey splits "APP.INDEX" into its parts; ok is false when key has
// another shape.
func ParseInstanceKey(key string) (app string, instance int, ok bool) {
	i := strings.LastIndexByte(key, '.')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(key[i+1:])
	if err != nil || n < 0 {
		return "", 0, false
	}
	return key[:i], n, true
}

// ArtifactObjectName returns the object name of an artifact in ArtifactsBucket:
// "sha256/HEX". Artifacts are content-addressed: apps pushing the same bytes
// share one object (and one upload).
func ArtifactObjectName(sha256hex string) string { return "sha256/" + sha256hex }

// HeaderArtifactSHA256 is the object-store header holding an artifact's hex
// SHA-256 digest, written by Push and checked by the push verb and runners.
const HeaderArtifactSHA256 = "Dartup-Sha256"

// LambdaStatusKey returns the status key under which a node reports a
// lambda's warm workers and stats: "APP.node-NODE".
func LambdaStatusKey(app, node string) string { return app + ".node-" + node }

// NodeControlSubject returns the subject a runner node answers control
// requests on: "dartup.node.NODE.VERB" (verbs: "drain").
func NodeControlSubject(node, verb string) string { return "dartup.node." + node + "." + verb }

// DrainRequest is the body of a node's drain request.
type DrainRequest struct {
	// Drain true moves the node's daemons elsewhere and stops its lambdas;
	// false makes it take work again.
	Drain bool `json:"drain"`
}
