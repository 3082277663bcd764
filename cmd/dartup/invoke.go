package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

type invokeFlags struct {
	conn  connFlags
	data  string
	async bool
	json  bool
}

func newInvokeCmd() *cobra.Command {
	f := &invokeFlags{}
	cmd := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Invoke a lambda and print its result (as `nats req lambda.NAME` does, and says why when nothing takes it)",
		Long: `Invoke a lambda and print its result (as ` + "`nats req lambda.NAME`" + ` does).
Without --data the event is {} (as the AWS CLI sends); --data '' sends an
empty one. When no runner takes the request ("no responders" for the stock
nats CLI), it says why: no such lambda (404), a daemon (403), stopped or
not hosted by any node (503, with the reason), or cannot start (502, with
the cause).

With --async the event is stored (in JetStream) and its request id printed
as soon as it is: the lambda runs it later, at least once, retried on
failure, and the dead letters keep it when it fails for good (see the push
flags --retries, --retry-backoff, --max-event-age, --on-success and
--on-failure, and 'dartup dlq'). The function gets the request id as
Lambda-Runtime-Aws-Request-Id on every attempt.`,
		Example: `  dartup invoke hello                   # the event is {}
  dartup invoke greet --data '{"name":"Ada"}'
  dartup invoke sass --data @style.scss
  echo '{}' | dartup invoke hello --data -
  dartup invoke --async mail --data '{"to":"ada@example.com"}'   # prints the request id`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			event, err := readData(f.data)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("data") {
				event = []byte("{}")
			}
			if f.json && !f.async {
				return usageErr(errors.New("--json goes with --async; without it the result is printed as the function returned it"))
			}
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				if f.async {
					id, err := c.InvokeAsync(ctx, args[0], event)
					if err != nil {
						return err
					}
					if f.json {
						return printJSON(cmd.OutOrStdout(), map[string]string{"request_id": id, "function": args[0]})
					}
					_, err = fmt.Fprintln(cmd.OutOrStdout(), id)
					return err
				}
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
	cmd.Flags().BoolVar(&f.async, "async", false, "store the event and print its request id at once; the lambda runs it later (an Event invocation)")
	cmd.Flags().BoolVar(&f.json, "json", false, "with --async: print {request_id, function} as JSON")
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
