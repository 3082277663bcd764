package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

type pushFlags struct {
	conn          connFlags
	json          bool
	name          string
	autoRestart   bool
	noAutoRestart bool
	lambda        bool
	force         bool
	cwd           string
	entry         string
	instances     int
	env           []string
	args          []string
	runtime       string
	killTimeout   time.Duration
	maxRestarts   int
	minUptime     time.Duration
	restartDelay  time.Duration
	stopExitCodes []int
	port          int
	aotRuntime    string
	constraints   []string
	wait          deployWait
	// daemons' front door
	http           []string
	stripPrefix    bool
	ready          string
	readyTimeout   time.Duration
	health         string
	healthInterval time.Duration
	healthFailures int
	parallel       int
	history        int
	// lambda settings
	protocol   string
	handler    string
	keepWarm   time.Duration
	maxWorkers int
	queue      int
	timeout    time.Duration
	memory     int
	httpEvent  string
	// lambda schedules (schedules.go)
	schedules  []string
	scheduleTZ string
	async      asyncFlags
}

func newPushCmd() *cobra.Command {
	f := &pushFlags{}
	cmd := &cobra.Command{
		Use:   "push [FILE] [-- COMMAND [ARGS…]]",
		Short: "Upload an app and run it as a daemon (or, with --lambda, as a lambda)",
		Long: `Upload FILE into dartup's object store and declare it as an app. FILE may be
a compiled executable (dart compile exe), a Dart AOT snapshot (run with
dartaotruntime), a kernel .dill (run with dart), or a .dart file, built here
when the Dart SDK is on PATH. With --runtime command, the command line after
-- runs as is. Pushing an existing name rolls the new version out: one
instance at a time (--parallel), each new worker starts and gets ready
(--ready) before the old one is drained and stopped; a new version that does
not get ready stops the rollout, the old version keeps serving, and push
exits 1. With --http, every server's HTTP gateway proxies the route to the
app's ready instances, each on a free PORT its runner chooses.`,
		Example: `  dartup push --name web -j 4 --http / ./build/web      # one address: curl localhost:2374/
  dartup push --name api -j 2 --http api.example.com/ --ready http:/healthz ./api
  dartup push --name web -j 4 --port 8080 ./build/web  # fixed ports 8080-8083
  dartup push --lambda --name hello ./hello
  dartup push --lambda --name fast --protocol nats ./fast     # native: app.ServeLambda or the Dart runLambda
  dartup push --lambda --name report --schedule '0 0 9 * * MON-FRI' --schedule-tz Europe/Berlin ./report
  dartup push --lambda --name mail --retries 5 --retry-backoff 1s,30s --on-failure mail.failed ./mail
  dartup push --name sass --runtime aot ./sass.snapshot --arg --watch --arg in.scss:out.css
  dartup push --name site --http / ./build --entry bin/server   # a folder: public/ and templates come along
  dartup push --name tick --runtime command -- /usr/bin/env bash -c 'while sleep 1; do date; done'`,
		RunE: func(cmd *cobra.Command, args []string) error { return runPush(cmd, f, args) },
	}
	f.conn.register(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&f.json, "json", false, "print the outcome as JSON: {outcome, revision, app}")
	fs.StringVarP(&f.name, "name", "n", "", "app name (default: the file's base name)")
	fs.BoolVar(&f.autoRestart, "auto-restart", true, "restart the app when it exits")
	fs.BoolVar(&f.noAutoRestart, "no-auto-restart", false, "do not restart the app when it exits")
	fs.BoolVarP(&f.lambda, "lambda", "L", false, "push a lambda: started on demand by requests to lambda.NAME or HTTP /NAME")
	fs.StringVar(&f.entry, "entry", "", "with a folder as FILE: the program in it to run, e.g. bin/server (the folder is uploaded whole and is the working directory)")
	fs.StringVar(&f.cwd, "cwd", "", "working directory of the app on the node, an absolute path (default: the app's own directory in the runner's work dir)")
	fs.BoolVar(&f.force, "force", false, "replace an app of the name taken from the file even when it runs another file or is of the other kind")
	fs.IntVarP(&f.instances, "instances", "j", 1, "number of daemon instances")
	fs.StringArrayVar(&f.env, "env", nil, "environment variable K=V for the app (repeatable)")
	fs.StringArrayVar(&f.args, "arg", nil, "argument for the app (repeatable)")
	fs.StringVar(&f.runtime, "runtime", "", "exe, aot, kernel or command (default: detected from FILE)")
	fs.DurationVar(&f.killTimeout, "kill-timeout", clientsdk.DefaultKillTimeout, "grace between SIGTERM and SIGKILL")
	fs.IntVar(&f.maxRestarts, "max-restarts", clientsdk.DefaultMaxRestarts, "quick crashes in a row before the app is errored")
	fs.DurationVar(&f.minUptime, "min-uptime", clientsdk.DefaultMinUptime, "a run shorter than this counts as a crash-loop crash")
	fs.DurationVar(&f.restartDelay, "restart-delay", clientsdk.DefaultRestartDelay, "first backoff delay (grows ×1.5 up to 15s)")
	fs.IntSliceVar(&f.stopExitCodes, "stop-exit-code", nil, "exit code that does not restart the app (repeatable)")
	fs.IntVar(&f.port, "port", 0, "give instance i the environment PORT=port+i")
	fs.StringVar(&f.aotRuntime, "dart-aot-runtime", "", "path of dartaotruntime on the runner nodes (a relative path is made absolute here; default: found on PATH)")
	fs.StringArrayVar(&f.constraints, "constraint", nil, "run only on nodes with label=value (repeatable)")
	fs.StringArrayVar(&f.http, "http", nil, "gateway route to the daemon's ready instances: /PREFIX or HOST/PREFIX (repeatable)")
	fs.BoolVar(&f.stripPrefix, "http-strip-prefix", false, "remove the route's prefix from the path before proxying")
	fs.StringVar(&f.ready, "ready", "", "readiness probe: tcp, http:/PATH or none (default: tcp with --http, else none)")
	fs.DurationVar(&f.readyTimeout, "ready-timeout", clientsdk.DefaultReadyTimeout, "how long a new instance may take to get ready")
	fs.StringVar(&f.health, "health", "", "health check: tcp or http:/PATH; an instance failing it --health-failures times in a row is restarted")
	fs.DurationVar(&f.healthInterval, "health-interval", clientsdk.DefaultHealthInterval, "time between health checks")
	fs.IntVar(&f.healthFailures, "health-failures", clientsdk.DefaultHealthFailures, "failed health checks in a row that restart an instance")
	fs.IntVar(&f.parallel, "parallel", clientsdk.DefaultParallel, "instances a rollout replaces at once")
	fs.IntVar(&f.history, "history", clientsdk.DefaultHistory, "versions kept, with their artifacts, for 'dartup history' and 'dartup rollback'")
	f.wait.register(cmd)
	fs.BoolVar(&f.wait.detach, "no-wait", false, "same as --detach")
	_ = fs.MarkHidden("no-wait")
	fs.StringVar(&f.protocol, "protocol", clientsdk.ProtocolRuntimeAPI, "lambda protocol: runtime-api (AWS Lambda Runtime API), stdio (one process per request) or nats (native: app.ServeLambda, the Dart runLambda)")
	fs.StringVar(&f.handler, "handler", "", "lambda handler, passed as _HANDLER")
	fs.DurationVar(&f.keepWarm, "keep-warm", clientsdk.DefaultKeepWarm, "idle time before a lambda worker is stopped (0: after each request)")
	fs.IntVar(&f.maxWorkers, "max-workers", clientsdk.DefaultMaxWorkers, "lambda workers per node")
	fs.IntVar(&f.queue, "queue", clientsdk.DefaultQueue, "lambda requests waiting for a worker per node")
	fs.DurationVar(&f.timeout, "timeout", clientsdk.DefaultTimeout, "lambda invocation timeout")
	fs.IntVar(&f.memory, "memory", clientsdk.DefaultMemoryMB, "advertised lambda memory (AWS_LAMBDA_FUNCTION_MEMORY_SIZE), MB")
	fs.StringVar(&f.httpEvent, "http-event", "", "event for HTTP requests: apigw, alb or raw (default: raw for --protocol stdio, else apigw)")
	fs.StringArrayVar(&f.schedules, "schedule", nil, "run the lambda on a timetable, as an async invocation: '@every 30s', a 6-field cron expression with seconds ('0 */5 * * * *'), or @hourly, @daily, @weekly, @monthly, @yearly (repeatable)")
	fs.StringVar(&f.scheduleTZ, "schedule-tz", "", "IANA time zone of this push's cron schedules, e.g. Europe/Berlin (default UTC; @every takes none)")
	f.async.register(cmd)
	return cmd
}

func (f *pushFlags) spec(cmd *cobra.Command) (clientsdk.AppSpec, error) {
	s := clientsdk.AppSpec{Name: f.name, Kind: clientsdk.KindDaemon, Runtime: clientsdk.Runtime(f.runtime),
		Instances: f.instances, Args: f.args, Port: f.port, Interpreter: f.aotRuntime, Cwd: f.cwd,
		Bundle:          bundleOf(f.entry),
		HTTPStripPrefix: f.stripPrefix, Ready: f.ready, ReadyTimeout: clientsdk.Duration(f.readyTimeout), Health: f.health,
		HealthInterval: clientsdk.Duration(f.healthInterval), HealthFailures: f.healthFailures, Parallel: f.parallel, History: f.history}
	for _, h := range f.http {
		r, err := clientsdk.ParseRoute(h)
		if err != nil {
			return s, usageErr(err)
		}
		s.HTTP = append(s.HTTP, r)
	}
	if f.lambda {
		if len(f.http) > 0 || f.ready != "" || f.health != "" {
			return s, usageErr(errors.New("--http, --ready and --health are for daemons; a lambda is reached at /NAME on the gateway"))
		}
		s.ReadyTimeout, s.HealthInterval, s.HealthFailures, s.Parallel = 0, 0, 0, 0
		s.Kind = clientsdk.KindLambda
		kw := clientsdk.Duration(f.keepWarm)
		s.Lambda = &clientsdk.LambdaSpec{Protocol: f.protocol, Handler: f.handler, KeepWarm: &kw, MaxWorkers: f.maxWorkers,
			Queue: f.queue, Timeout: clientsdk.Duration(f.timeout), MemoryMB: f.memory, HTTPEvent: f.httpEvent}
		if f.queue == 0 && cmd.Flags().Changed("queue") {
			return s, usageErr(errors.New("--queue must be at least 1"))
		}
	}
	if err := f.addSchedules(&s); err != nil {
		return s, err
	}
	if err := f.async.apply(cmd, &s); err != nil {
		return s, err
	}
	if f.instances < 1 {
		return s, usageErr(fmt.Errorf("--instances must be at least 1, not %d", f.instances))
	}
	if f.history < 1 {
		return s, usageErr(fmt.Errorf("--history must be at least 1, not %d", f.history))
	}
	s.Restart = clientsdk.RestartPolicy{NoAutoRestart: f.noAutoRestart || !f.autoRestart, MaxRestarts: f.maxRestarts,
		MinUptime: clientsdk.Duration(f.minUptime), RestartDelay: clientsdk.Duration(f.restartDelay),
		KillTimeout: clientsdk.Duration(f.killTimeout), StopExitCodes: f.stopExitCodes}
	var err error
	if s.Env, err = parseKV(f.env, "--env"); err != nil {
		return s, err
	}
	if s.Constraints, err = parseKV(f.constraints, "--constraint"); err != nil {
		return s, err
	}
	return s, nil
}

func parseKV(items []string, flag string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, usageErr(fmt.Errorf("%s %q is not KEY=VALUE", flag, it))
		}
		m[k] = v
	}
	return m, nil
}

func runPush(cmd *cobra.Command, f *pushFlags, args []string) error {
	spec, err := f.spec(cmd)
	if err != nil {
		return err
	}
	var file string
	dash := cmd.ArgsLenAtDash()
	switch {
	case spec.Runtime == clientsdk.RuntimeCommand:
		if dash < 0 || dash >= len(args) {
			return usageErr(errors.New("--runtime command needs the command line after --: dartup push --name NAME --runtime command -- /srv/app/bin/app --flag"))
		}
		if dash > 0 {
			return usageErr(errors.New("--runtime command takes no FILE; put the command line after --"))
		}
		spec.Command = args[dash:]
	case dash >= 0 && dash < len(args):
		// `dartup push --name x -- ./bin/x --flag`: a command line.
		spec.Runtime, spec.Command = clientsdk.RuntimeCommand, args[dash:]
		if dash > 0 {
			return usageErr(errors.New("give either FILE or a command line after --, not both"))
		}
	case len(args) == 1:
		file = args[0]
	case len(args) == 0:
		return usageErr(errors.New("push needs a FILE (or --runtime command -- CMD)"))
	default:
		return usageErr(fmt.Errorf("push takes one FILE, got %d arguments; pass app arguments with --arg", len(args)))
	}
	if spec.Interpreter != "" && !filepath.IsAbs(spec.Interpreter) && strings.Contains(spec.Interpreter, "/") {
		// A relative interpreter path would be looked up on the node, from
		// the runner's directory: use this machine's absolute path (the
		// same place on a single machine, a clear error on another node).
		abs, err := filepath.Abs(spec.Interpreter)
		if err != nil {
			return usageErr(err)
		}
		spec.Interpreter = abs
	}
	if spec.Cwd == "" {
		if err := checkRelativePaths(append(append([]string{}, spec.Command...), spec.Args...)); err != nil {
			return err
		}
	}
	derived := spec.Name == ""
	if derived {
		base := file
		if base == "" {
			base = spec.Command[0]
		}
		spec.Name = defaultName(base)
	}
	if err := clientsdk.ValidateName(spec.Name); err != nil {
		return usageErr(err)
	}
	// The server's own bounds (clientsdk/limits.go), checked before anything
	// is built, uploaded or even connected to.
	defaulted := spec.WithDefaults()
	if err := defaulted.ValidateBounds(); err != nil {
		return usageErr(err)
	}
	if strings.HasSuffix(file, ".dart") {
		built, cleanup, err := buildDart(cmd, file, spec.Runtime)
		if err != nil {
			return err
		}
		defer cleanup()
		file = built
		if spec.Runtime == "" {
			spec.Runtime = clientsdk.RuntimeExe
		}
	}
	return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
		if derived && !f.force {
			if err := checkReplaces(ctx, c, spec, file); err != nil {
				return err
			}
		}
		prog := newProgress(os.Stderr, "Uploading "+filepath.Base(file))
		stored, err := c.Push(ctx, spec, file, prog.update)
		prog.done()
		if err != nil {
			return err
		}
		return f.wait.await(cmd, c, stored.Name, stored.Version, stored.Revision, &clientsdk.AppSummary{Name: stored.Name, Kind: stored.Kind, State: clientsdk.AppDead}, f.json)
	})
}

// checkRelativePaths refuses a command line or argument that is a relative
// path to a file here: the app runs on a node, in its own directory there,
// where that path names nothing (or something else).
func checkRelativePaths(args []string) error {
	for _, a := range args {
		if a == "" || filepath.IsAbs(a) || strings.HasPrefix(a, "-") {
			continue
		}
		if st, err := os.Stat(a); err == nil && !st.IsDir() {
			abs, _ := filepath.Abs(a)
			return usageErr(fmt.Errorf("%s is a relative path to a file here, but the app runs on a node, in its own working directory: push the file itself (dartup push %s), give an absolute path that exists on the nodes (%s), or set the working directory with --cwd", a, a, abs))
		}
	}
	return nil
}

// checkReplaces refuses a push whose app name was taken from its file when
// an app of that name runs another file or command, or is of the other
// kind: the push would replace it by accident.
func checkReplaces(ctx context.Context, c *clientsdk.Client, spec clientsdk.AppSpec, file string) error {
	info, err := c.Describe(ctx, spec.Name)
	if errors.Is(err, clientsdk.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	old := info.Spec
	kind := spec.Kind
	if kind == "" {
		kind = clientsdk.KindDaemon
	}
	was, now := describeSource(old.Artifact, old.Command), describeSource(nil, spec.Command)
	if file != "" {
		now = filepath.Base(filepath.Clean(file))
		if st, err := os.Stat(file); err == nil && st.IsDir() {
			now += "/"
		}
	}
	if old.Kind == kind && was == now {
		return nil
	}
	return usageErr(fmt.Errorf("an app named %s already runs: a %s from %s; this push would replace it with a %s from %s. Give --name %s to replace it on purpose (or --force), or another --name",
		spec.Name, old.Kind, was, kind, now, spec.Name))
}

// bundleOf is the bundle of push --entry, nil without it.
func bundleOf(entry string) *clientsdk.Bundle {
	if entry == "" {
		return nil
	}
	return &clientsdk.Bundle{Entry: filepath.ToSlash(entry)}
}

// describeSource names what an app runs: its artifact's file or its command.
func describeSource(a *clientsdk.ArtifactRef, command []string) string {
	if a != nil {
		return a.FileName
	}
	return shellJoin(command)
}

// defaultName is the app name push uses without --name: the file's base name
// without its extension, made a valid name.
func defaultName(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // "." names the folder it is
	}
	base := filepath.Base(path)
	return clientsdk.TokenFrom(strings.TrimSuffix(base, filepath.Ext(base)), "app")
}

// buildDart compiles a .dart file with the local Dart SDK.
func buildDart(cmd *cobra.Command, file string, rt clientsdk.Runtime) (string, func(), error) {
	dart, err := exec.LookPath("dart")
	if err != nil {
		return "", nil, usageErr(fmt.Errorf("%s is Dart source and no Dart SDK is on PATH to build it: install the Dart SDK (https://dart.dev/get-dart), or push a compiled file (`dart compile exe %s`)", file, file))
	}
	dir, err := os.MkdirTemp("", "dartup-build-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	kind, ext := "exe", ""
	switch rt {
	case clientsdk.RuntimeKernel:
		kind, ext = "kernel", ".dill"
	case clientsdk.RuntimeAOT:
		kind, ext = "aot-snapshot", ".aot"
	}
	out := filepath.Join(dir, defaultName(file)+ext)
	fmt.Fprintf(os.Stderr, "Building %s... ", out)
	start := time.Now()
	c := exec.CommandContext(cmd.Context(), dart, "compile", kind, file, "-o", out)
	b, err := c.CombinedOutput()
	if err != nil {
		fmt.Fprintln(os.Stderr)
		cleanup()
		return "", nil, fmt.Errorf("dart compile %s %s failed: %v\n%s", kind, file, err, b)
	}
	fmt.Fprintf(os.Stderr, "%.1fs\n", time.Since(start).Seconds())
	return out, cleanup, nil
}
