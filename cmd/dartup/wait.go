package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

// deployWait is how push and start wait for the outcome.
type deployWait struct {
	wait   time.Duration
	detach bool
}

func (w *deployWait) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.DurationVar(&w.wait, "wait", 60*time.Second, "how long to wait for every instance to run (or the lambda to be hosted), or for it to fail")
	fs.BoolVar(&w.detach, "detach", false, "return at once, without waiting for the outcome")
}

// DeployResult is what push and start print with --json.
type DeployResult struct {
	// Outcome is running, error, pending, timeout or detached.
	Outcome clientsdk.Outcome `json:"outcome"`
	// Revision is the app's version (AppSpec.Version).
	Revision uint64 `json:"revision"`
	// App is the app's summary when the wait ended.
	App *clientsdk.AppSummary `json:"app"`
}

// await waits for the outcome of app name at bucket revision rev, prints it
// (the summary line, or JSON), and returns an error (exit code 1) unless it
// runs. summary is what the verb answered, used when not waiting.
func (w *deployWait) await(cmd *cobra.Command, c *clientsdk.Client, name string, version, rev uint64, summary *clientsdk.AppSummary, asJSON bool) error {
	res := DeployResult{Outcome: clientsdk.OutcomeDetached, Revision: version, App: summary}
	var err error
	if !w.detach {
		ctx, cancel := context.WithTimeout(cmd.Context(), w.wait)
		defer cancel()
		prog := newSpinner("Waiting for " + name)
		res.Outcome, res.App, err = c.WaitDeployed(ctx, name, rev)
		prog.done()
	}
	if res.App == nil {
		res.App = &clientsdk.AppSummary{Name: name}
	}
	if asJSON {
		if perr := printJSON(cmd.OutOrStdout(), res); perr != nil {
			return perr
		}
	} else {
		fmt.Fprintln(cmd.OutOrStdout(), listLine(*res.App))
	}
	var e *clientsdk.Error
	if errors.As(err, &e) && e.Type == clientsdk.TypeNotRunning {
		return &exitError{code: 1, err: err}
	}
	return err
}

// stopWait is how kill and remove wait for the processes to be gone.
type stopWait struct {
	wait   time.Duration
	noWait bool
}

func (w *stopWait) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.DurationVar(&w.wait, "wait", 0, "how long to wait for the processes to be gone (default: the app's kill timeout plus 15s)")
	fs.BoolVar(&w.noWait, "no-wait", false, "return at once, while the processes may still be stopping")
}

// context returns the context the wait runs in: --wait, or the app's kill
// timeout plus 15 s.
func (w *stopWait) context(parent context.Context, killTimeout time.Duration) (context.Context, context.CancelFunc) {
	d := w.wait
	if d <= 0 {
		d = killTimeout + 15*time.Second
	}
	return context.WithTimeout(parent, d)
}

// awaitSpec is await for a spec the server just stored (a scale, a
// rollback): a killed app is not waited for and reads dead, as it runs
// nothing until `dartup start`.
func (w deployWait) awaitSpec(cmd *cobra.Command, c *clientsdk.Client, spec *clientsdk.AppSpec, asJSON bool) error {
	state := clientsdk.AppAlive
	if spec.Stopped {
		w.detach, state = true, clientsdk.AppDead
	}
	sum := &clientsdk.AppSummary{Name: spec.Name, Kind: spec.Kind, State: state}
	return w.await(cmd, c, spec.Name, spec.Version, spec.Revision, sum, asJSON)
}
