package clientsdk_test

import (
	"fmt"
	"os"
	"testing"
)

// TestMain starts the real server the Example functions run against.
func TestMain(m *testing.M) {
	stop, err := startExampleServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the example server:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}
