//go:build !linux

package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// Off Linux, dartup is a client: serve, runner, password and startup (which
// run apps, or manage a server's data dir) say so.

func newServeCmd() *cobra.Command {
	return linuxOnly("serve", "Start a dartup server (Linux only)")
}

func newRunnerCmd() *cobra.Command {
	return linuxOnly("runner", "Join a dartup cluster as a runner node (Linux only)")
}

func newPasswordCmd() *cobra.Command {
	return linuxOnly("password USER", "Create or replace a user of a server (Linux only: run it on the server)")
}

func newStartupCmd() *cobra.Command {
	return linuxOnly("startup", "Print or install a systemd unit (Linux only)")
}

// linuxOnly is a command that explains it runs on Linux only.
func linuxOnly(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short,
		Example:            "  dartup list --server nats://SERVER:4222   # the client commands work here",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr(fmt.Errorf("dartup %s runs on Linux only (this is %s/%s); run it on the Linux machine, and use the client commands (push, list, logs, …) from here with --server nats://HOST:4222",
				cmd.Name(), runtime.GOOS, runtime.GOARCH))
		},
	}
}

// isServerUsageError: no server settings are checked off Linux.
func isServerUsageError(error) bool { return false }
