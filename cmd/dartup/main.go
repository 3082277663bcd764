// Command dartup runs Dart servers and lambdas on your own machines, on NATS:
// `dartup serve` starts a server, `dartup push` deploys an app, `dartup list`
// shows what runs. Run `dartup --help` for every command.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/termquiet"
)

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errSilent is an exit code's error that has nothing to say (diff
// --exit-code finding changes).
var errSilent = errors.New("")

// usageErr marks err as the user's mistake (exit code 2).
func usageErr(err error) error { return &exitError{code: 2, err: err} }

// restoreTerm puts TERM back: it was "dumb" while the packages initialised,
// so that bubbletea's init does not query the terminal (see termquiet).
var restoreTerm = termquiet.Restore

func main() {
	restoreTerm()
	os.Exit(run(context.Background(), os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var silent *exitError
	if errors.As(err, &silent) && silent.err == errSilent {
		return silent.code
	}
	// Line by line: an error may span lines (a hint after it); what it
	// quotes from apps or servers shows no control characters.
	lines := strings.Split(err.Error(), "\n")
	for i := range lines {
		lines[i] = printable(lines[i])
	}
	fmt.Fprintln(os.Stderr, colorRed("error: ")+strings.Join(lines, "\n"))
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case isServerUsageError(err), isFlagError(err):
		return 2
	}
	if e, ok := clientsdk.AsError(err); ok && e.Code >= 400 && e.Code < 500 {
		return 1
	}
	return 1
}
