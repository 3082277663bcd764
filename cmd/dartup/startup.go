//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// defaultUnitDir is where --install writes units for systemd.
const defaultUnitDir = "/etc/systemd/system"

type startupFlags struct {
	install bool
	unitDir string
	name    string
}

func newStartupCmd() *cobra.Command {
	f := &startupFlags{}
	cmd := &cobra.Command{
		Use:   "startup [serve|runner] [FLAGS…]",
		Short: "Print (or --install) a systemd unit that starts dartup at boot",
		Long: `Print a systemd unit that runs 'dartup serve' (or 'dartup runner') with the
flags given after it, as PM2's 'pm2 startup' does; with --install, write it
to /etc/systemd/system and enable and start it. dartup's own flags (--install,
--unit-dir, --unit-name) go before serve or runner.

Without --data the unit keeps its data in /var/lib/dartup (runner:
/var/lib/dartup-runner) and the apps' working directories beside it, both
made by systemd (StateDirectory). Secrets (DARTUP_CLUSTER_SECRET, a runner's
DARTUP_PASSWORD) go in /etc/dartup/serve.env or runner.env, never on the
command line. See docs/operations.md for why each setting is there.`,
		Example: `  dartup startup serve --require-password --tls-self-signed -a 0.0.0.0 --nats-addr 0.0.0.0:4222
  sudo dartup startup --install serve
  dartup startup runner --server tls://10.0.0.1:4222 --name r1 --label zone=a`,
		Args: cobra.ArbitraryArgs,
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []string{"serve", "runner"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveDefault
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStartup(cmd.OutOrStdout(), f, args)
		},
	}
	cmd.Flags().SetInterspersed(false) // what follows serve/runner is theirs
	cmd.Flags().BoolVar(&f.install, "install", false, "write the unit, then systemctl daemon-reload and enable --now (root)")
	cmd.Flags().StringVar(&f.unitDir, "unit-dir", defaultUnitDir, "where --install writes the unit (systemctl runs only for the default)")
	cmd.Flags().StringVar(&f.name, "unit-name", "", "the unit's name (default dartup, or dartup-runner)")
	return cmd
}

// unitFor is the systemd unit that runs `dartup ROLE ARGS…` with exe.
func unitFor(exe, role string, args []string) (string, error) {
	var sub *cobra.Command
	switch role {
	case "serve":
		sub = newServeCmd()
	case "runner":
		sub = newRunnerCmd()
	default:
		return "", usageErr(fmt.Errorf("startup runs serve or runner, not %q", role))
	}
	if err := sub.ParseFlags(args); err != nil {
		return "", usageErr(fmt.Errorf("dartup %s %s: %v", role, strings.Join(args, " "), err))
	}
	if err := checkUnitArgs(sub, args); err != nil {
		return "", err
	}
	if rest := sub.Flags().Args(); len(rest) > 0 {
		return "", usageErr(fmt.Errorf("dartup %s takes no arguments, only flags: %q", role, rest))
	}
	state, desc := "dartup", "dartup server (NATS + JetStream, HTTP gateway, runner)"
	if role == "runner" {
		state, desc = "dartup-runner", "dartup runner node"
	}
	var stateDirs string
	if !sub.Flags().Changed("data") {
		args = append(args, "--data", "/var/lib/"+state, "--work-dir", "/var/lib/"+state+"-work")
		stateDirs = "StateDirectory=" + state + " " + state + "-work\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Made by: dartup startup %s
[Unit]
Description=%s
Wants=network-online.target
After=network-online.target

[Service]
# As root, so that each app runs as a user of its own (see docs/security.md).
%sEnvironmentFile=-/etc/dartup/%s.env
ExecStart=%s
Restart=always
RestartSec=2
# SIGTERM to dartup only: it stops its workers itself, in order.
KillMode=mixed
KillSignal=SIGTERM
# More than dartup's own 30 s and your apps' longest --kill-timeout.
TimeoutStopSec=45
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`, shellJoin(append([]string{role}, args...)), desc, stateDirs, role, systemdJoin(append([]string{exe, role}, args...)))
	return b.String(), nil
}

// unitPathFlags are the flags that name files or folders: systemd starts
// the unit in /, so they must be absolute.
var unitPathFlags = []string{"data", "work-dir", "tls-cert", "tls-key", "tls-ca", "cluster-tls-cert", "cluster-tls-key",
	"cluster-tls-ca", "cluster-secret-file", "dart-aot-runtime"}

// checkUnitArgs refuses what does not belong in a unit file: a password
// (the unit is world-readable; it goes in the EnvironmentFile), control
// characters (they would break the unit's lines), relative paths.
func checkUnitArgs(sub *cobra.Command, args []string) error {
	for _, a := range args {
		if strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return usageErr(fmt.Errorf("%q holds a control character; a unit's command line cannot", a))
		}
	}
	if sub.Flags().Changed("password") {
		return usageErr(fmt.Errorf("a unit file is readable by every user: put DARTUP_PASSWORD=… in /etc/dartup/%s.env (mode 0600), which the unit reads, instead of --password", sub.Name()))
	}
	for _, name := range unitPathFlags {
		if fl := sub.Flags().Lookup(name); fl != nil && fl.Changed && fl.Value.String() != "" && !filepath.IsAbs(fl.Value.String()) {
			return usageErr(fmt.Errorf("--%s %s is relative, but systemd starts the unit in /: give an absolute path", name, fl.Value.String()))
		}
	}
	return nil
}

func runStartup(out io.Writer, f *startupFlags, args []string) error {
	role := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		role, args = args[0], args[1:]
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return err
	}
	unit, err := unitFor(exe, role, args)
	if err != nil {
		return err
	}
	if strings.Contains(exe, "go-build") {
		fmt.Fprintf(os.Stderr, "warning: %s is a temporary build of `go run`, gone when it exits: build dartup (go build -o /usr/local/bin/dartup ./cmd/dartup) and run its startup\n", exe)
	}
	name := f.name
	if name == "" {
		name = map[string]string{"serve": "dartup", "runner": "dartup-runner"}[role]
	}
	if !f.install {
		_, err := io.WriteString(out, unit)
		return err
	}
	path := filepath.Join(f.unitDir, name+".service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		return fmt.Errorf("write %s: %w (--install needs root)", path, err)
	}
	fmt.Fprintf(out, "Wrote %s\n", path)
	if f.unitDir != defaultUnitDir {
		fmt.Fprintf(out, "Not in %s: link or copy it there, then systemctl daemon-reload && systemctl enable --now %s\n", defaultUnitDir, name)
		return nil
	}
	return enableUnit(out, name)
}

// enableUnit reloads systemd and enables and starts the unit, or says how
// to when systemd does not run here.
func enableUnit(out io.Writer, name string) error {
	systemctl, err := exec.LookPath("systemctl")
	if _, serr := os.Stat("/run/systemd/system"); err != nil || serr != nil {
		fmt.Fprintf(out, "systemd does not run here; where it does: systemctl daemon-reload && systemctl enable --now %s\n", name)
		return nil
	}
	for _, a := range [][]string{{"daemon-reload"}, {"enable", "--now", name}} {
		if b, err := exec.Command(systemctl, a...).CombinedOutput(); err != nil {
			return errors.New("systemctl " + strings.Join(a, " ") + ": " + strings.TrimSpace(string(b)))
		}
	}
	fmt.Fprintf(out, "Enabled and started %s: systemctl status %s, journalctl -u %s -f\n", name, name, name)
	return nil
}

// systemdJoin quotes args for an ExecStart line: % and $ doubled (systemd
// expands specifiers and variables even inside quotes), others in double
// quotes with backslash escapes where needed.
func systemdJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		a = strings.ReplaceAll(strings.ReplaceAll(a, "%", "%%"), "$", "$$")
		if plainArg.MatchString(a) {
			out[i] = a
			continue
		}
		out[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
	}
	return strings.Join(out, " ")
}
