package main

import (
	"errors"
	"os"
	"strings"

	"github.com/dartup/dartup/internal/version"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "dartup",
		Short: "Run Dart servers and lambdas on your own machines, on NATS",
		Long: `dartup is a PM2-like runner for Dart servers and lambdas, built on NATS.

'dartup serve' starts a server (embedded NATS with JetStream, an HTTP gateway
and a runner) with nothing else to install. 'dartup push' uploads an app and
runs it as a daemon, or as a lambda started on demand.`,
		Example: `  dartup serve                         # start a local server (NATS :4222, HTTP :2374)
  dartup push --name hello ./hello     # run ./hello as a daemon
  dartup list                          # what runs`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(errors.New(err.Error() + "\n(see '" + c.CommandPath() + " --help')"))
	})
	root.AddCommand(
		newServeCmd(),
		newPasswordCmd(),
		newListCmd(),
		newInfoCmd(),
		newVersionCmd(),
		newStartupCmd(),
		newRoutesCmd(),
		newHistoryCmd(),
		newRollbackCmd(),
		newSchedulesCmd(),
		newTopCmd(),
	)
	addAppCommands(root)
	addCompletions(root)
	root.CompletionOptions.HiddenDefaultCmd = false
	// Add cobra's help and completion commands now (Execute would add them
	// later) so that they too get examples.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  dartup help serve"
		case "completion":
			c.Example = "  source <(dartup completion bash)\n  dartup completion zsh > \"${fpath[1]}/_dartup\""
			for _, sh := range c.Commands() {
				if sh.Example == "" {
					sh.Example = "  dartup completion " + sh.Name() + " --help   # where to put the script"
				}
			}
		}
	}
	return root
}

func isFlagError(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown flag") || strings.HasPrefix(s, "unknown command") ||
		strings.Contains(s, "flag needs an argument") || strings.HasPrefix(s, "invalid argument") ||
		strings.HasPrefix(s, "accepts ") || strings.HasPrefix(s, "requires at least")
}

func isTTY(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func colorRed(s string) string {
	if isTTY(os.Stderr) && os.Getenv("NO_COLOR") == "" {
		return "\x1b[31m" + s + "\x1b[0m"
	}
	return s
}

// envOr returns the environment variable's value, or def when unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}
