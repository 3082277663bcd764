package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

// asyncFlags are push's settings of a lambda's async invocations.
type asyncFlags struct {
	retries     int
	backoff     string
	maxEventAge time.Duration
	onSuccess   string
	onFailure   string
}

// asyncFlagNames are the flags asyncFlags registers.
var asyncFlagNames = []string{"retries", "retry-backoff", "max-event-age", "on-success", "on-failure"}

func (f *asyncFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.IntVar(&f.retries, "retries", clientsdk.DefaultRetries, "lambda: times a failed async event is tried again (0 to 100)")
	fs.StringVar(&f.backoff, "retry-backoff", "1s,10s,60s", "lambda: waits before each retry of an async event, comma-separated; the last repeats")
	fs.DurationVar(&f.maxEventAge, "max-event-age", clientsdk.DefaultMaxEventAge, "lambda: an async event older than this goes to the dead letters (1s to 168h)")
	fs.StringVar(&f.onSuccess, "on-success", "", "lambda: subject that receives each async event's result (JSON), e.g. orders.done or dartup.async.OTHER")
	fs.StringVar(&f.onFailure, "on-failure", "", "lambda: subject that receives each dead-lettered async event's error (JSON)")
}

// apply sets spec's async settings from the flags given; it refuses them
// for a daemon.
func (f *asyncFlags) apply(cmd *cobra.Command, s *clientsdk.AppSpec) error {
	var given []string
	for _, n := range asyncFlagNames {
		if cmd.Flags().Changed(n) {
			given = append(given, "--"+n)
		}
	}
	if len(given) == 0 {
		return nil
	}
	if s.Lambda == nil {
		return usageErr(fmt.Errorf("%s: async settings are for lambdas (push with --lambda)", strings.Join(given, ", ")))
	}
	if f.maxEventAge < clientsdk.MinMaxEventAge {
		return usageErr(fmt.Errorf("--max-event-age %s: an event may wait from %s to %s", f.maxEventAge, clientsdk.MinMaxEventAge, clientsdk.MaxMaxEventAge))
	}
	a := &clientsdk.AsyncSpec{OnSuccess: f.onSuccess, OnFailure: f.onFailure, MaxEventAge: clientsdk.Duration(f.maxEventAge)}
	if cmd.Flags().Changed("retries") {
		n := f.retries
		a.Retries = &n
	}
	if cmd.Flags().Changed("retry-backoff") {
		b, err := parseBackoff(f.backoff)
		if err != nil {
			return usageErr(err)
		}
		a.RetryBackoff = b
	}
	s.Lambda.Async = a
	return nil
}

// parseBackoff reads "1s,10s,60s".
func parseBackoff(v string) ([]clientsdk.Duration, error) {
	var out []clientsdk.Duration
	for _, p := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("--retry-backoff %q: each wait is a duration such as 500ms, 10s or 1m", v)
		}
		out = append(out, clientsdk.Duration(d))
	}
	if len(out) == 0 {
		return nil, errors.New("--retry-backoff needs at least one wait")
	}
	return out, nil
}
