package lambdas

import (
	"testing"
	"time"
)

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
// dispatcher's records: a message on it is then one on a subscription the
// dispatcher has no record of.
func (m *Manager) ForgetSubscription(name string) {
	if f := m.current(name); f != nil {
		m.native.forget(f)
	}
}

// SetProbeWait has presence probes wait up to d for a direct host's answer
// until the test ends (a slow machine may take longer than 50 ms).
func SetProbeWait(t testing.TB, d time.Duration) {
	old := probeWait.Swap(int64(d))
	t.Cleanup(func() { probeWait.Store(old) })
}
