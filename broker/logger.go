package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats-server/v2/server"
)

// natsLogger adapts a slog.Logger to nats-server's Logger interface. Fatalf
// logs at error level and never exits the process: a failing embedded server
// must not take dartup down with os.Exit; it records the message in fatal
// (when set) for Start to report.
type natsLogger struct {
	l     *slog.Logger
	fatal *atomic.Pointer[string]
	// onError, when set, is given every error line.
	onError func(msg string)
}

// Noticef logs at debug level: nats-server's notices (its start-up banner,
// connections, leader changes) are shown with -v; its warnings and errors
// always.
func (n natsLogger) Noticef(format string, v ...any) { n.Debugf(format, v...) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	n.l.Error("fatal: " + msg)
	if n.fatal != nil {
		n.fatal.CompareAndSwap(nil, &msg)
	}
}
func (n natsLogger) Errorf(format string, v ...any) {
	if isAuthFailure(format, v) {
		n.Debugf(format, v...)
		return
	}
	msg := fmt.Sprintf(format, v...)
	n.l.Error(msg)
	if n.onError != nil {
		n.onError(msg)
	}
}

// isAuthFailure reports whether a server error line is its per-connection
// "authentication error". dartup's authenticator logs every refusal itself
// (with the reason, at most one line per kind per 10 s); at error level the
// server's line would be one per attempt of a flood. The server passes
// server.ErrAuthentication as an argument when the client gave a user name;
// without one, the sentinel's text is the whole format (there is no value to
// match by type then).
func isAuthFailure(format string, v []any) bool {
	for _, a := range v {
		if err, ok := a.(error); ok && errors.Is(err, server.ErrAuthentication) {
			return true
		}
	}
	return strings.HasSuffix(format, server.ErrAuthentication.Error())
}
func (n natsLogger) Debugf(format string, v ...any) {
	if n.l.Enabled(context.Background(), slog.LevelDebug) {
		n.l.Debug(fmt.Sprintf(format, v...))
	}
}
func (n natsLogger) Tracef(format string, v ...any) {
	if n.l.Enabled(context.Background(), slog.LevelDebug-4) {
		n.l.Log(context.Background(), slog.LevelDebug-4, fmt.Sprintf(format, v...))
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
