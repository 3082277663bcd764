package lambdas

import "time"

// Limits of the Runtime API's server, for the tests.
const (
	RTMaxStrangers    = rtMaxStrangers
	RTMaxWorkerConns  = rtMaxWorkerConns
	RTStrangerGrace   = rtStrangerGrace
	RTMaxAllStrangers = rtMaxAllStrangers
)

// Settle waits (up to within) until the notices that reached the server
// before the call are handled.
func (m *Manager) Settle(within time.Duration) { m.settle(within) }

// ForgetSubscription drops lambda name's subscription from the native
// dispatcher's records, as a message that comes before subscribe records
// a new one finds them.
func (m *Manager) ForgetSubscription(name string) {
	if f := m.current(name); f != nil {
		m.native.forget(f)
	}
}
