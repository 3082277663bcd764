package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/lambdas"
)

// resolveCommand turns a spec into the command line of one worker: the
// artifact (fetched into the cache) run directly or by dartaotruntime or dart,
// or the spec's command. env holds the dartup variables for the worker. A
// spec that does not pass Validate (stored by an older dartup, even after
// Clamp) is refused with an error saying so.
func (r *Runner) resolveCommand(ctx context.Context, spec clientsdk.AppSpec, instance int) (lambdas.Command, error) {
	var cmd lambdas.Command
	if err := spec.Validate(); err != nil {
		return cmd, fmt.Errorf("the stored spec of %s (revision %d) cannot run: %w; push the app again", spec.Name, spec.Revision, err)
	}
	switch spec.Runtime {
	case clientsdk.RuntimeCommand:
		p, err := lookPath(spec.Command[0])
		if err != nil {
			return cmd, err
		}
		cmd.Path, cmd.Args = p, append(append([]string{}, spec.Command[1:]...), spec.Args...)
	case clientsdk.RuntimeExe, clientsdk.RuntimeAOT, clientsdk.RuntimeKernel:
		art, err := r.cache.path(ctx, spec.Artifact)
		if err != nil {
			return cmd, err
		}
		switch spec.Runtime {
		case clientsdk.RuntimeExe:
			cmd.Path, cmd.Args = art, append([]string{}, spec.Args...)
		case clientsdk.RuntimeAOT:
			interp, err := r.interpreter(spec.Interpreter, r.dartAOT, "dartaotruntime", "dart")
			if err != nil {
				return cmd, fmt.Errorf("runtime aot needs a Dart AOT runtime: %w; put dartaotruntime on the runner's PATH or pass --dart-aot-runtime", err)
			}
			cmd.Path, cmd.Args = interp, append([]string{art}, spec.Args...)
		case clientsdk.RuntimeKernel:
			interp, err := r.interpreter(spec.Interpreter, r.dart, "dart")
			if err != nil {
				return cmd, fmt.Errorf("runtime kernel needs the Dart VM: %w; install the Dart SDK on the runner or pass --dart", err)
			}
			cmd.Path, cmd.Args = interp, append([]string{art}, spec.Args...)
		}
	default:
		return cmd, fmt.Errorf("unknown runtime %q", spec.Runtime)
	}
	cmd.Dir = r.workDir(spec.Name)
	if err := os.MkdirAll(cmd.Dir, 0o755); err != nil {
		return cmd, err
	}
	cmd.Env = r.workerEnv(spec, instance)
	return cmd, nil
}

func (r *Runner) interpreter(fromSpec, fromRunner string, names ...string) (string, error) {
	for _, p := range []string{fromSpec, fromRunner} {
		if p != "" {
			return lookPath(p)
		}
	}
	var firstErr error
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err == nil {
			return p, nil
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("%s is not on PATH", n)
		}
	}
	return "", firstErr
}

func lookPath(p string) (string, error) {
	if strings.ContainsRune(p, '/') {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return "", fmt.Errorf("%s does not exist on node", p)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s is not an executable file", p)
		}
		return abs, nil
	}
	abs, err := exec.LookPath(p)
	if err != nil {
		return "", fmt.Errorf("%s is not on the runner's PATH", p)
	}
	return abs, nil
}

func (r *Runner) workDir(app string) string { return filepath.Join(r.dataDir, "work", app) }

// workerEnv is the runner's environment (less dartup's own secrets) plus the
// app's variables and DARTUP_APP, DARTUP_INSTANCE, DARTUP_NODE, NATS_URL and PORT.
func (r *Runner) workerEnv(spec clientsdk.AppSpec, instance int) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DARTUP_PASSWORD", "DARTUP_URL", "DARTUP_USER", "NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"DARTUP_APP="+spec.Name,
		"DARTUP_INSTANCE="+strconv.Itoa(instance),
		"DARTUP_NODE="+r.nodeID,
		"NATS_URL="+r.natsURL,
	)
	if r.workerSecret != nil {
		env = append(env, "NATS_TOKEN="+clientsdk.WorkerToken(r.workerSecret, spec.Name),
			"NATS_INBOX_PREFIX="+clientsdk.WorkerInboxPrefix(spec.Name))
	}
	if spec.Port > 0 && instance >= 0 {
		env = append(env, "PORT="+strconv.Itoa(spec.Port+instance))
	}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	return env
}
