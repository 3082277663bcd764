package broker

import (
	"slices"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

func TestStaleLambdas(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	live := map[string]clientsdk.Node{"a": {ID: "a"}}
	entries := []staleLambdaEntry{
		{key: "fn.node-a", node: "a", updatedAt: now.Add(-time.Hour)},          // live node: kept, however old
		{key: "fn.node-b", node: "b", updatedAt: now.Add(-time.Hour)},          // dead for long: collected
		{key: "fn.node-c", node: "c", updatedAt: now.Add(-time.Minute)},        // dead, written lately: kept
		{key: "fn.node-d", node: "d", updatedAt: now.Add(-10*time.Minute - 1)}, // just over the age
		{key: "fn.node-e", node: "e", updatedAt: now.Add(-10 * time.Minute)},   // exactly the age: kept
	}
	var got []string
	for _, e := range staleLambdas(entries, live, now, 10*time.Minute) {
		got = append(got, e.key)
	}
	if want := []string{"fn.node-b", "fn.node-d"}; !slices.Equal(got, want) {
		t.Fatalf("collected %v, want %v", got, want)
	}
}
