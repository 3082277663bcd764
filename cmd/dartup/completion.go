package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/spf13/cobra"
)

// completionTimeout bounds the server lookups of shell completion: a
// completion that cannot ask offers nothing rather than hanging the shell.
const completionTimeout = time.Second

// enumFlags are the flags whose values completion offers.
var enumFlags = map[string][]string{
	"runtime":    {string(clientsdk.RuntimeExe), string(clientsdk.RuntimeAOT), string(clientsdk.RuntimeKernel), string(clientsdk.RuntimeCommand)},
	"protocol":   {clientsdk.ProtocolRuntimeAPI, clientsdk.ProtocolStdio, clientsdk.ProtocolNATS},
	"http-event": {clientsdk.HTTPEventAPIGateway, clientsdk.HTTPEventALB, clientsdk.HTTPEventRaw},
	"log-format": {"text", "json"},
	"isolation":  {"auto", "required"},
	"sync":       {"auto", "always", "interval"},
}

// addCompletions completes, in every command that talks to a server, app
// names where the command takes NAME (node names for `nodes drain` and
// `nodes undrain`), and the values of the enumFlags.
func addCompletions(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for flag, values := range enumFlags {
			if c.Flags().Lookup(flag) != nil {
				_ = c.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		if c.Flags().Lookup("server") != nil && c.ValidArgsFunction == nil {
			if use := strings.Fields(c.Use); len(use) > 1 {
				switch {
				case strings.Contains(use[1], "NODE"):
					c.ValidArgsFunction = completeNames(nodeNames)
				case strings.Contains(use[1], "NAME"):
					c.ValidArgsFunction = completeNames(appNames)
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeNames offers the names list returns that start with what is
// typed and are not given yet.
func completeNames(list func(ctx context.Context, c *clientsdk.Client) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		f := connFlagsOf(cmd)
		c, err := f.connect(ctx)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer c.Close()
		names, err := list(ctx, c)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, n := range names {
			if strings.HasPrefix(n, toComplete) && !slices.Contains(args, n) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func appNames(ctx context.Context, c *clientsdk.Client) ([]string, error) {
	apps, err := c.List(ctx)
	names := make([]string, 0, len(apps))
	for _, a := range apps {
		names = append(names, a.Name)
	}
	return names, err
}

func nodeNames(ctx context.Context, c *clientsdk.Client) ([]string, error) {
	nodes, err := c.Nodes(ctx)
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		names = append(names, n.ID)
	}
	return names, err
}

// connFlagsOf reads a command's connection flags (parsed before a
// completion function runs), with the completion's short timeout and
// without prompting.
func connFlagsOf(cmd *cobra.Command) *connFlags {
	fs := cmd.Flags()
	f := &connFlags{timeout: completionTimeout}
	f.servers, _ = fs.GetStringSlice("server")
	f.user, _ = fs.GetString("user")
	f.context, _ = fs.GetString("context")
	f.tlsCA, _ = fs.GetString("tls-ca")
	f.tlsCert, _ = fs.GetString("tls-cert")
	f.tlsKey, _ = fs.GetString("tls-key")
	f.insecure, _ = fs.GetBool("insecure")
	return f
}
