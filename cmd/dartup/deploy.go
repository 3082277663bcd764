package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/deploy"
	"github.com/spf13/cobra"
)

type deployFlags struct {
	conn     connFlags
	file     string
	artifact string
	prune    bool
	json     bool
	exitCode bool
	wait     deployWait
}

func (f *deployFlags) register(cmd *cobra.Command, apply bool) {
	f.conn.register(cmd)
	fs := cmd.Flags()
	fs.StringVarP(&f.file, "file", "f", "", "the deploy file (default: dartup.yaml here, else serverless.yml)")
	fs.StringVar(&f.artifact, "artifact", "", "serverless.yml: the bootstrap its functions run when the file names none")
	fs.BoolVar(&f.prune, "prune", false, "remove apps of the file's service that it no longer declares")
	fs.BoolVar(&f.json, "json", false, "print the plan (and with deploy the results) as JSON")
	if apply {
		f.wait.register(cmd)
	} else {
		fs.BoolVar(&f.exitCode, "exit-code", false, "exit 3 when the plan changes something, 0 when not (errors exit 1 or 2)")
	}
}

func newDeployCmd() *cobra.Command {
	f := &deployFlags{}
	cmd := &cobra.Command{
		Use:   "deploy [-f dartup.yaml]",
		Short: "Deploy the apps and functions a dartup.yaml (or serverless.yml) declares",
		Long: `Read the deploy file, compare what it declares with what the server runs, show
the plan (create, update with the changed fields, unchanged, remove with
--prune), upload each changed artifact once (functions may share one), push
the apps (daemons roll out with zero downtime), and wait until each runs.
Exits 1 if anything ends in error. Deploying the same file twice changes
nothing. docs/deploy.md describes the file; docs/dartup.schema.json checks it
in editors.`,
		Example: `  dartup deploy                          # ./dartup.yaml
  dartup deploy -f serverless.yml --artifact ./build/bootstrap
  dartup deploy --prune                  # also remove apps deleted from the file
  dartup diff                            # only show the plan`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDeploy(cmd, f, true) },
	}
	f.register(cmd, true)
	return cmd
}

func newDiffCmd() *cobra.Command {
	f := &deployFlags{}
	cmd := &cobra.Command{
		Use:   "diff [-f dartup.yaml]",
		Short: "Show what `dartup deploy` would change, and change nothing",
		Example: `  dartup diff
  dartup diff -f serverless.yml --artifact ./build/bootstrap --json
  dartup diff --exit-code || echo "changes to deploy"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDeploy(cmd, f, false) },
	}
	f.register(cmd, false)
	return cmd
}

// deployFile returns the deploy file to read: -f, or dartup.yaml, or
// serverless.yml here.
func deployFile(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	for _, name := range []string{"dartup.yaml", "dartup.yml", "serverless.yml", "serverless.yaml"} {
		if _, err := os.Stat(name); err == nil {
			return name, nil
		}
	}
	return "", usageErr(errors.New("no dartup.yaml here: write one (docs/deploy.md), or give the file with -f"))
}

// DeployOutput is what deploy and diff print with --json.
type DeployOutput struct {
	File    string          `json:"file"`
	Plan    deploy.Plan     `json:"plan"`
	Ignored []string        `json:"ignored,omitempty"`
	Results []deploy.Result `json:"results,omitempty"`
}

func runDeploy(cmd *cobra.Command, f *deployFlags, apply bool) error {
	file, err := deployFile(f.file)
	if err != nil {
		return err
	}
	proj, err := deploy.Load(file, deploy.Options{Artifact: f.artifact})
	if err != nil {
		return fileProblems(file, err)
	}
	if f.prune && !proj.ServiceGiven {
		return usageErr(fmt.Errorf("--prune removes the apps of the file's service that it no longer declares, and %s names no service (its folder's name, %s, would be used, which another project's folder may share): write `service: %s` in it first", file, proj.Service, proj.Service))
	}
	// Ctrl-C or SIGTERM end the context, so that what was built or packed
	// is removed on the way out.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd.SetContext(ctx)
	build := func(ctx context.Context, file string, rt clientsdk.Runtime) (string, func(), error) {
		return buildDart(cmd, file, rt)
	}
	prep, err := deploy.Prepare(ctx, proj, build)
	if err != nil {
		return fileProblems(file, err)
	}
	defer prep.Close()
	return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
		names := make([]string, len(prep.Specs))
		for i, s := range prep.Specs {
			names[i] = s.Name
		}
		current, err := deploy.Current(ctx, c, names, f.prune)
		if err != nil {
			return err
		}
		plan := deploy.MakePlan(proj.Service, prep.Specs, current, f.prune)
		out := DeployOutput{File: file, Plan: plan, Ignored: proj.Ignored}
		w := cmd.OutOrStdout()
		if !f.json {
			printPlan(w, file, proj, plan)
		}
		if err := takenApps(plan); err != nil {
			if f.json {
				_ = printJSON(w, out)
			}
			return err
		}
		if err := routeConflicts(ctx, c, plan); err != nil {
			return err
		}
		if !apply || !plan.Changes() {
			if err := finishDiff(w, f, out, apply); err != nil || !apply {
				return err
			}
			return failingApps(plan.Failing())
		}
		return applyPlan(cmd, c, f, prep, out)
	})
}

// fileProblems makes a deploy file's problems a usage error (exit 2).
func fileProblems(file string, err error) error {
	var fe *deploy.FileError
	if errors.As(err, &fe) {
		return usageErr(fmt.Errorf("%s has problems; nothing was deployed:\n%w", file, err))
	}
	return usageErr(err)
}

// finishDiff ends a diff, or a deploy with nothing to change.
func finishDiff(w io.Writer, f *deployFlags, out DeployOutput, apply bool) error {
	if f.json {
		if err := printJSON(w, out); err != nil {
			return err
		}
	} else if !out.Plan.Changes() {
		fmt.Fprintf(w, "No changes: %s up to date.\n", plural(len(out.Plan.Steps), "app is", "apps are"))
	}
	if !apply && f.exitCode && out.Plan.Changes() {
		return &exitError{code: 3, err: errSilent}
	}
	return nil
}

// takenApps refuses a plan that would change apps of another service.
func takenApps(plan deploy.Plan) error {
	for _, s := range plan.Steps {
		if s.Action == deploy.Taken {
			return usageErr(fmt.Errorf("an app named %s already runs and belongs to service %s (deployed from another file); nothing was deployed: rename it in this file, or remove it first (`dartup remove %s`)", s.App, s.Owner, s.App))
		}
	}
	return nil
}

// routeConflicts refuses, before anything changes, a plan whose routes
// apps outside the file hold.
func routeConflicts(ctx context.Context, c *clientsdk.Client, plan deploy.Plan) error {
	if !plan.Changes() {
		return nil
	}
	table, err := c.Routes(ctx)
	if err != nil {
		return err
	}
	if clashes := deploy.RouteConflicts(plan, table); len(clashes) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("routes are taken by apps this file does not declare; nothing was deployed:\n%s", strings.Join(clashes, "\n"))}
	}
	return nil
}

// failingApps is the error (exit 1) for apps in error that a deploy left
// as they are.
func failingApps(steps []deploy.Step) error {
	if len(steps) == 0 {
		return nil
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.App)
	}
	verb := " is"
	if len(names) > 1 {
		verb = " are"
	}
	return &exitError{code: 1, err: fmt.Errorf("%s in error, unchanged by this deploy: see `dartup logs %s`; fix it and deploy, or `dartup restart %s`",
		strings.Join(names, ", ")+verb, names[0], names[0])}
}

// plural picks one or many by n, and writes n before many.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// applyPlan uploads, pushes and removes, waits, and reports.
func applyPlan(cmd *cobra.Command, c *clientsdk.Client, f *deployFlags, prep *deploy.Prepared, out DeployOutput) error {
	ctx, w := cmd.Context(), cmd.OutOrStdout()
	var prog *progress
	hooks := deploy.Hooks{
		Upload: func(a *clientsdk.LocalArtifact) clientsdk.Progress {
			if prog != nil {
				prog.done()
			}
			prog = newProgress(os.Stderr, "Uploading "+a.Ref.FileName)
			return prog.update
		},
	}
	results, err := deploy.Apply(ctx, c, out.Plan, prep, hooks)
	if prog != nil {
		prog.done()
	}
	if !f.wait.detach { // what was applied before a failure too
		wctx, cancel := context.WithTimeout(ctx, f.wait.wait)
		spin := newSpinner("Waiting for the apps")
		deploy.Wait(wctx, c, results)
		spin.done()
		cancel()
	}
	out.Results = results
	if f.json {
		if perr := printJSON(w, out); perr != nil {
			return perr
		}
	} else {
		printResults(w, results, f.wait.detach)
	}
	if err != nil {
		return fmt.Errorf("deploy stopped: %w (the steps before it were applied; fix it and deploy again)", err)
	}
	var failed []string
	for _, r := range results {
		if r.Failed() && !(f.wait.detach && r.Error == "") {
			failed = append(failed, r.App)
		}
	}
	if len(failed) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s did not deploy: see above, and `dartup logs %s`", strings.Join(failed, ", "), failed[0])}
	}
	return failingApps(out.Plan.Failing())
}

// printPlan writes the plan for people.
func printPlan(w io.Writer, file string, proj *deploy.Project, plan deploy.Plan) {
	fmt.Fprintf(w, "Service %s (%s): %d to create, %d to update, %d unchanged", plan.Service, file,
		plan.Count(deploy.Create), plan.Count(deploy.Update), plan.Count(deploy.Unchanged))
	if n := plan.Count(deploy.Remove); n > 0 {
		fmt.Fprintf(w, ", %d to remove", n)
	}
	fmt.Fprintln(w)
	width := 0
	for _, s := range plan.Steps {
		width = max(width, len(s.App))
	}
	for _, s := range plan.Steps {
		mark, what := "=", "unchanged"
		switch s.Action {
		case deploy.Create:
			mark, what = "+", "create"
		case deploy.Update:
			mark, what = "~", "update: "+changeList(s.Changes, 6)
		case deploy.Remove:
			mark, what = "-", "remove (not in "+file+")"
		}
		switch {
		case s.Action == deploy.Taken:
			mark, what = "!", "taken: belongs to service "+s.Owner
		case s.Stopped && s.Action != deploy.Remove:
			what += " (stopped: `dartup start " + s.App + "` runs it)"
		case s.Action == deploy.Unchanged && s.State == clientsdk.AppError:
			what += " (in error: " + s.Message + ")"
		}
		if s.Adopts {
			what += " (adopts the app pushed by hand)"
		}
		fmt.Fprintf(w, "  %s %-*s  %-6s  %s\n", mark, width, s.App, s.Kind, printable(what))
	}
	for _, ig := range proj.Ignored {
		fmt.Fprintf(w, "  ignored: %s\n", ig)
	}
}

// changeList writes up to n changes, then how many more.
func changeList(changes []clientsdk.SpecChange, n int) string {
	var parts []string
	for i, c := range changes {
		if i == n {
			parts = append(parts, fmt.Sprintf("+%d more", len(changes)-n))
			break
		}
		parts = append(parts, c.String())
	}
	return strings.Join(parts, ", ")
}

// printResults writes how each applied step ended.
func printResults(w io.Writer, results []deploy.Result, detached bool) {
	created, updated, removed := 0, 0, 0
	for _, r := range results {
		switch {
		case r.Action == deploy.Unchanged:
			continue
		case r.Error != "":
			fmt.Fprintf(w, " • %s - %s: %s\n", printable(r.App), colorRed("failed"), printable(r.Error))
			continue
		case r.Action == deploy.Remove:
			removed++
			fmt.Fprintf(w, " • %s - removed\n", printable(r.App))
			continue
		case r.Action == deploy.Create:
			created++
		default:
			updated++
		}
		if r.Stopped {
			fmt.Fprintf(w, " • %s - stopped (version %d stored; `dartup start %s` runs it)\n", printable(r.App), r.Version, printable(r.App))
			continue
		}
		if r.Summary == nil {
			fmt.Fprintf(w, " • %s - pushed (version %d)\n", printable(r.App), r.Version)
			continue
		}
		sum := *r.Summary
		fmt.Fprintf(w, "%s (version %d)\n", listLine(sum), r.Version)
	}
	verb := "Deployed"
	if detached {
		verb = "Pushed (not waited for)"
	}
	fmt.Fprintf(w, "%s: %d created, %d updated, %d removed.\n", verb, created, updated, removed)
}
