package broker_test

import (
	"os"
	"testing"

	"github.com/dartup/dartup/broker"
	"golang.org/x/crypto/bcrypt"
)

// TestMain lowers the bcrypt cost of the hashes the tests write: under the
// race detector a cost-11 check takes ~1.5 s of CPU, and several at once on
// a 2-core machine push a NATS CONNECT past the server's 2 s first PING.
// The production cost is checked by TestHashCost, and end to end by the
// cmd/dartup tests, whose `dartup password` writes real cost-11 hashes.
func TestMain(m *testing.M) {
	broker.SetHashCostForTest(bcrypt.MinCost)
	os.Exit(m.Run())
}

func TestHashCost(t *testing.T) {
	if broker.DefaultHashCost != broker.BcryptCost || broker.BcryptCost < 10 {
		t.Errorf("SetPassword hashes with cost %d (BcryptCost %d); want BcryptCost, at least 10", broker.DefaultHashCost, broker.BcryptCost)
	}
}
