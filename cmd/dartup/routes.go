package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

type routesFlags struct {
	conn connFlags
	json bool
}

func newRoutesCmd() *cobra.Command {
	f := &routesFlags{}
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "List the HTTP gateway's routes in the order it tries them",
		Long: `List the HTTP gateway's routes in the order it tries them: the lambdas'
function routes (METHOD /path), most specific first, then the prefix routes
(method *): daemons' --http routes and /NAME of the lambdas without function
routes, a route for a host before routes for any host, then the longest prefix.
A path that function routes match with other methods is answered 405. One
exception to the order: a function route that begins with a parameter
(/{proxy+}) does not take /NAME of a lambda without function routes.`,
		Example: `  dartup routes
  HOST             METHOD  PATH         KIND    APP     READY
  *                GET     /users/{id}  lambda  users   -
  *                POST    /users       lambda  users   -
  api.example.com  *       /            daemon  api     2
  *                *       /legacy      lambda  legacy  -
  *                *       /            daemon  web     4
  dartup routes --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, &f.conn, func(ctx context.Context, c *clientsdk.Client) error {
				routes, err := c.Routes(ctx)
				if err != nil {
					return err
				}
				return printRoutes(cmd.OutOrStdout(), routes, f.json)
			})
		},
	}
	f.conn.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	return cmd
}

// printRoutes writes the routes as a table (host * for any host, ready - for
// a lambda), or as JSON.
func printRoutes(w io.Writer, routes []clientsdk.RouteInfo, asJSON bool) error {
	if asJSON {
		if routes == nil {
			routes = []clientsdk.RouteInfo{}
		}
		return printJSON(w, routes)
	}
	if len(routes) == 0 {
		_, err := fmt.Fprintln(w, "No HTTP routes: push a daemon with --http, or a lambda.")
		return err
	}
	rows := make([][]string, 0, len(routes))
	for _, r := range routes {
		host, ready := r.Host, "-"
		if host == "" {
			host = "*"
		}
		if r.Ready != nil {
			ready = strconv.Itoa(*r.Ready)
		}
		rows = append(rows, []string{host, r.Method, r.Path, string(r.Kind), r.App, ready})
	}
	return table(w, []string{"host", "method", "path", "kind", "app", "ready"}, rows)
}
