// Command native is the benchmark's native lambda worker (dartup push
// --lambda --protocol nats), built on clientsdk/app.ServeLambda: it answers
// every event with the event itself, as the bootstrap does on the Runtime API.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/dartup/dartup/clientsdk/app"
)

func main() {
	err := app.ServeLambda(context.Background(), func(_ context.Context, event []byte) ([]byte, error) {
		return event, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "native:", err)
		os.Exit(1)
	}
}
