package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/version"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
)

// nodeAgent is a runner with the connections it owns: its own, and the
// reply-only one it answers callers on.
type nodeAgent struct {
	r       *runner.Runner
	nc, rnc *nats.Conn
}

// startLocalRunner starts the in-process runner of `dartup serve`; its node
// id is the server's name, so that it finds its own claims after a restart.
func startLocalRunner(ctx context.Context, b *broker.Broker, logger *slog.Logger, extra ...runner.Option) (*nodeAgent, error) {
	nc, err := b.Connect("dartup-runner")
	if err != nil {
		return nil, err
	}
	rnc, err := b.Connect(clientsdk.ReplyConnName + " runner")
	if err != nil {
		nc.Close()
		return nil, err
	}
	opts := append([]runner.Option{
		runner.WithReplyConn(rnc, b.ReplyPrefixes()...),
		runner.WithLogger(logger),
		runner.WithNodeID(clientsdk.TokenFrom(b.ServerName(), "node")),
		runner.WithDataDir(b.DataDir()),
		runner.WithNATSURL(b.WorkerURL()),
		runner.WithVersion(version.Version),
	}, extra...)
	return startNode(ctx, nc, rnc, logger, opts...)
}

// startNode starts a runner on nc (answering callers on rnc); it closes both
// connections when the runner cannot start.
func startNode(ctx context.Context, nc, rnc *nats.Conn, logger *slog.Logger, opts ...runner.Option) (*nodeAgent, error) {
	r, err := runner.New(ctx, nc, opts...)
	if err == nil {
		err = r.Start(ctx)
	}
	if err != nil {
		nc.Close()
		rnc.Close()
		return nil, err
	}
	return &nodeAgent{r: r, nc: nc, rnc: rnc}, nil
}

func (n *nodeAgent) stop(ctx context.Context) error {
	err := n.r.Stop(ctx)
	for _, nc := range []*nats.Conn{n.rnc, n.nc} {
		if d := nc.Drain(); d != nil && !errors.Is(d, nats.ErrConnectionClosed) {
			err = errors.Join(err, d)
		}
	}
	return err
}

// persistentNodeID returns the node id kept in DIR/node-id, creating one from
// the host name and a random suffix the first time.
func persistentNodeID(dir string) (string, error) {
	p := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(p); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	}
	h, _ := os.Hostname()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	base := clientsdk.TokenFrom(h, "node")
	if len(base) > 48 { // room for the suffix
		base = base[:48]
	}
	id := base + "-" + hex.EncodeToString(suffix)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return id, os.WriteFile(p, []byte(id+"\n"), 0o600)
}
