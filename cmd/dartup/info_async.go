package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/dartup/dartup/clientsdk"
)

// printAsync prints a lambda's async settings and the state of its async
// events.
func printAsync(w io.Writer, name string, a *clientsdk.AsyncSpec, st *clientsdk.AsyncStats) {
	if a != nil {
		retries := clientsdk.DefaultRetries
		if a.Retries != nil {
			retries = *a.Retries
		}
		var waits []string
		for _, d := range a.RetryBackoff {
			waits = append(waits, d.D().String())
		}
		line := fmt.Sprintf("  async: retries %d  retry-backoff %s  max-event-age %s", retries, orNone(strings.Join(waits, ",")), a.MaxEventAge.D())
		if a.OnSuccess != "" {
			line += "  on-success " + a.OnSuccess
		}
		if a.OnFailure != "" {
			line += "  on-failure " + a.OnFailure
		}
		fmt.Fprintln(w, printable(line))
	}
	if st != nil {
		fmt.Fprintf(w, "  async events: %d queued  %d in flight  %d retried  %d dead-lettered", st.Queued, st.InFlight, st.Retried, st.DeadLettered)
		if st.DeadLettered > 0 {
			fmt.Fprintf(w, " (dartup dlq ls %s)", name)
		}
		fmt.Fprintln(w)
	}
}
