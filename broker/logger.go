package broker

import (
	"context"
	"fmt"
	"log/slog"
)

// natsLogger adapts a slog.Logger to nats-server's Logger interface. Fatalf
// logs at error level and never exits the process: a failing embedded server
// must not take dartup down with os.Exit.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Info(fmt.Sprintf(format, v...)) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error("fatal: " + fmt.Sprintf(format, v...)) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
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
