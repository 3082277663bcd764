package lambdas

// Limits of the Runtime API's server, for the tests.
const (
	RTMaxStrangers    = rtMaxStrangers
	RTMaxWorkerConns  = rtMaxWorkerConns
	RTStrangerGrace   = rtStrangerGrace
	RTMaxAllStrangers = rtMaxAllStrangers
)
