package main

import "github.com/spf13/cobra"

// addAppCommands adds the app management commands.
func addAppCommands(root *cobra.Command) {}
