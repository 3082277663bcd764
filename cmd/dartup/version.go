package main

import (
	"fmt"
	"runtime"

	"github.com/dartup/dartup/internal/version"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print dartup's version",
		Example: "  dartup version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := version.Commit()
			if c == "" {
				c = "unknown"
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "dartup %s (commit %s, nats-server %s, %s %s/%s)\n",
				version.Version, c, server.VERSION, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
