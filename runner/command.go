package runner

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
	"github.com/dartup/dartup/lambdas"
)

// resolveCommand turns a spec into the command line of one worker: the
// artifact (fetched into the cache, exposed to the app's user) run directly
// or by dartaotruntime or dart, or the spec's command; its work dir, user and
// environment. With a user of its own, every file it needs is checked first,
// so that a path the app cannot reach is an error that says so. A spec that
// does not pass Validate (stored by an older dartup, even after Clamp) is
// refused with an error saying so.
func (r *Runner) resolveCommand(ctx context.Context, spec clientsdk.AppSpec, instance int) (lambdas.Command, error) {
	var cmd lambdas.Command
	if err := spec.Validate(); err != nil {
		return cmd, fmt.Errorf("the stored spec of %s (revision %d) cannot run: %w; push the app again", spec.Name, spec.Revision, err)
	}
	cred, err := r.ids.credential(spec.Name)
	if err != nil {
		return cmd, err
	}
	cmd.Credential = cred
	art, bundleDir := "", ""
	if spec.Artifact != nil && spec.Runtime != clientsdk.RuntimeCommand {
		cached, err := r.cache.path(ctx, spec.Artifact)
		if err != nil {
			return cmd, err
		}
		if spec.Bundle != nil {
			if bundleDir, err = exposeBundle(r.workRoot, spec.Name, spec.Artifact.SHA256, cached, cred); err != nil {
				return cmd, err
			}
			art = filepath.Join(bundleDir, filepath.FromSlash(spec.Bundle.Entry))
			if st, err := os.Stat(art); err != nil || !st.Mode().IsRegular() {
				return cmd, fmt.Errorf("the entry %s is not a file of the pushed folder", spec.Bundle.Entry)
			}
		} else if art, err = exposeArtifact(r.workRoot, spec.Name, spec.Artifact.SHA256, cached, cred); err != nil {
			return cmd, fmt.Errorf("expose the artifact to the app's user: %w", err)
		}
	}
	switch spec.Runtime {
	case clientsdk.RuntimeCommand:
		if cmd.Path, err = lookPath(spec.Command[0]); err != nil {
			return cmd, err
		}
		cmd.Args = append(append([]string{}, spec.Command[1:]...), spec.Args...)
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
	default:
		return cmd, fmt.Errorf("unknown runtime %q", spec.Runtime)
	}
	if cred != nil {
		if err := checkAccess(cmd.Path, *cred, needExec, os.Stat); err != nil {
			return cmd, err
		}
		if art != "" && art != cmd.Path {
			if err := checkAccess(art, *cred, needRead, os.Stat); err != nil {
				return cmd, err
			}
		}
	}
	if cmd.Dir, err = prepareAppDir(r.workRoot, spec.Name, cred); err != nil {
		return cmd, err
	}
	cmd.Env = r.workerEnv(spec, instance, cmd.Dir, r.ids.userName(spec.Name))
	if secret := r.workerSecret; secret != nil && spec.Lambda != nil && spec.Lambda.Protocol == clientsdk.ProtocolNATS {
		// Each native worker gets a token of its own, for its private subject.
		cmd.WorkerToken = func(worker string) string {
			return clientsdk.LambdaWorkerToken(secret, spec.Name, spec.TokenNonce, worker)
		}
	}
	if bundleDir != "" {
		cmd.Dir = bundleDir // the folder's files (public/, templates) are found relative to it
	}
	if spec.Cwd != "" {
		if err := checkCwd(spec.Cwd, cred); err != nil {
			return cmd, err
		}
		cmd.Dir = spec.Cwd
	}
	return cmd, nil
}

// checkCwd checks that dir (push --cwd) is a directory the app's user may
// enter.
func checkCwd(dir string, cred *proc.Credential) error {
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("working directory %s (--cwd): %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("working directory %s (--cwd) is not a directory", dir)
	case cred != nil:
		if err := checkAccess(dir, *cred, needExec, os.Stat); err != nil {
			return fmt.Errorf("working directory %s (--cwd): %w", dir, err)
		}
	}
	return nil
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

// workerEnv is the one environment builder of every worker, daemon and
// lambda alike. A worker does not inherit the runner's environment, which may
// hold its credentials in any form (DARTUP_PASSWORD, a proxy URL with a
// password, a cloud key): it gets only the variables that describe the
// machine (inheritable: PATH, locale, time zone), those the operator passed
// on with --pass-env, its user's HOME, USER and LOGNAME (its own when it has
// a user of its own, named userName), then the app's --env values, then
// dartup's: DARTUP_APP, DARTUP_INSTANCE, DARTUP_NODE, NATS_URL (without
// credentials), NATS_CA (with TLS), the app's NATS_TOKEN and
// NATS_INBOX_PREFIX, and PORT.
func (r *Runner) workerEnv(spec clientsdk.AppSpec, instance int, dir, userName string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if inheritable(k) || slices.Contains(r.passEnv, k) || userName == "" && isUserVar(k) {
			env = append(env, kv)
		}
	}
	if userName != "" {
		env = append(env, "HOME="+dir, "USER="+userName, "LOGNAME="+userName)
	}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	env = append(env,
		"DARTUP_APP="+spec.Name,
		"DARTUP_INSTANCE="+strconv.Itoa(instance),
		"DARTUP_NODE="+r.nodeID,
		"NATS_URL="+stripUserinfo(r.natsURL),
	)
	if r.workerCA != "" {
		env = append(env, "NATS_CA="+r.workerCA)
	}
	if r.workerSecret != nil {
		env = append(env, "NATS_TOKEN="+clientsdk.WorkerToken(r.workerSecret, spec.Name, spec.TokenNonce),
			"NATS_INBOX_PREFIX="+clientsdk.WorkerInboxPrefix(spec.Name))
	}
	if spec.Port > 0 && instance >= 0 {
		env = append(env, "PORT="+strconv.Itoa(spec.Port+instance))
	}
	return env
}

// inheritable reports whether the runner's variable k describes the machine
// rather than the runner (and so goes on to every worker): the program
// search path, the locale, the time zone, the temp dir, the terminal type.
func inheritable(k string) bool {
	switch k {
	case "PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM":
		return true
	}
	return strings.HasPrefix(k, "LC_")
}

// isUserVar reports whether k names the runner's user and home, which a
// worker sharing that user gets too.
func isUserVar(k string) bool { return k == "HOME" || k == "USER" || k == "LOGNAME" }

// ValidatePassEnv checks --pass-env names: variable names, never dartup's
// or NATS's own (which carry the runner's credentials).
func ValidatePassEnv(names []string) error {
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, "=\x00") {
			return fmt.Errorf("--pass-env %q is not a variable name", n)
		}
		if strings.HasPrefix(n, "DARTUP_") || strings.HasPrefix(n, "NATS_") {
			return fmt.Errorf("--pass-env %s: dartup's and NATS's own variables never reach apps", n)
		}
	}
	return nil
}

// stripUserinfo removes "user:password@" from each URL of a comma-separated list.
func stripUserinfo(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
