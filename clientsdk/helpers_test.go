package clientsdk_test

import (
	"encoding/json"
	"time"
)

const testTimeout = 10 * time.Second

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
