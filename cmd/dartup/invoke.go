package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

type invokeFlags struct {
	conn connFlags
	data string
}

func newInvokeCmd() *cobra.Command {
	f := &invokeFlags{}
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Invoke a lambda and print its result (the same as `nats req lambda.NAME`)",
		Long: `Invoke a lambda and print its result (the same as ` + "`nats req lambda.NAME`" + `).
Without --data the event is {} (as the AWS CLI sends); --data '' sends an
empty one.`,
		Example: `  dartup invoke hello                   # the event is {}
  dartup invoke greet --data '{"name":"Ada"}'
  dartup invoke sass --data @style.scss
  echo '{}' | dartup invoke hello --data -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			event, err := readData(f.data)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("data") {
				event = []byte("{}")
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				out, err := c.Invoke(ctx, args[0], event)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if _, err := w.Write(out); err != nil {
					return err
				}
				if len(out) > 0 && out[len(out)-1] != '\n' && isTTY(os.Stdout) {
					_, err = io.WriteString(w, "\n")
				}
				return err
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().StringVarP(&f.data, "data", "d", "", "event: a string, @FILE, or - for standard input (default {})")
	return cmd
}

func readData(d string) ([]byte, error) {
	switch {
	case d == "-":
		return io.ReadAll(os.Stdin)
	case strings.HasPrefix(d, "@"):
		b, err := os.ReadFile(d[1:])
		if err != nil {
			return nil, usageErr(errors.New("--data " + d + ": " + err.Error()))
		}
		return b, nil
	}
	return []byte(d), nil
}
