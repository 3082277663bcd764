package main

import (
	"fmt"
	"runtime"

	"github.com/dartup/dartup/internal/version"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"
)

// versionInfo is what `dartup version --json` prints.
type versionInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	NATSServer string `json:"nats_server"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print dartup's version",
		Example: `  dartup version
  dartup version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionInfo{Version: version.Version, Commit: version.Commit(), NATSServer: server.VERSION,
				Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
			if v.Commit == "" {
				v.Commit = "unknown"
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "dartup %s (commit %s, nats-server %s, %s %s)\n",
				v.Version, v.Commit, v.NATSServer, v.Go, v.Platform)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
