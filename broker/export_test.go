package broker

// DefaultHashCost is hashCost as the package sets it, before TestMain lowers it.
var DefaultHashCost = hashCost

// SetHashCostForTest sets the bcrypt cost SetPassword uses. Call it from
// TestMain only, before any test runs.
func SetHashCostForTest(c int) { hashCost = c }
