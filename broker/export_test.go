package broker

import (
	"context"
	"time"
)

// DefaultHashCost is hashCost as the package sets it, before TestMain lowers it.
var DefaultHashCost = hashCost

// SetHashCostForTest sets the bcrypt cost SetPassword uses. Call it from
// TestMain only, before any test runs.
func SetHashCostForTest(c int) { hashCost = c }

// WithLoginLimits sets the login limiter's budgets, per address and per user
// name: burst failed attempts, then one every every.
func WithLoginLimits(burst int, every time.Duration) func(*Config) {
	return func(c *Config) {
		l := defaultLoginLimits()
		l.PerSource, l.PerUser = rate{burst, every}, rate{burst, every}
		c.logins = &l
	}
}

// WithoutLoginLimits makes the broker check every password at once, with no
// limiter and no bcrypt gate: dartup before them, the benchmarks' baseline.
func WithoutLoginLimits() func(*Config) {
	return func(c *Config) { c.logins = &loginLimits{Off: true} }
}

// BcryptChecks returns how many bcrypt comparisons b's password checks ran.
func (b *Broker) BcryptChecks() int64 { return b.passwords.bcrypts.Load() }

// LimitedLogins returns how many login attempts b refused without a check.
func (b *Broker) LimitedLogins() int64 { return b.logins.limited.Load() }

// CollectDeadNodeLambdas runs one collection of the lambda status entries
// of nodes that are not alive, written more than age ago.
func (b *Broker) CollectDeadNodeLambdas(ctx context.Context, age time.Duration) (int, error) {
	return b.api.collectDeadNodeLambdas(ctx, age)
}

// CollectOrphans runs one collection of unused uploads older than age.
func (b *Broker) CollectOrphans(ctx context.Context, age time.Duration) (chunks, objects int, err error) {
	return b.api.collectOrphans(ctx, age)
}

// SweepAsync runs one sweep of the async events of names that are no lambda.
func (b *Broker) SweepAsync(ctx context.Context) { b.async.sweep(ctx) }

// ForgetCachedApp drops name from the lambda router's cache, if it holds
// it (reported), as if its watch had not delivered it yet: a push another
// server took a moment ago.
func (b *Broker) ForgetCachedApp(name string) bool {
	b.router.mu.Lock()
	defer b.router.mu.Unlock()
	_, ok := b.router.apps[name]
	delete(b.router.apps, name)
	return ok
}

// StopLookups spends the lambda router's budget of bucket reads for good,
// as a flood of made-up names does for as long as it lasts.
func (b *Broker) StopLookups() {
	b.router.lookups.SetBurst(0)
	b.router.lookups.SetLimit(0)
}
