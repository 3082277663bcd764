// Package leafnode runs the small embedded leaf-node server through which
// the in-process runner of `dartup serve` subscribes its native lambdas in
// direct mode (docs/lambdas.md): nats-server gives a queue-group message to
// a member on a leaf-node connection only when no client member is left, so
// the runner gets a request only when no worker is subscribed.
package leafnode

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// User is the user name the leaf server presents to its hub.
const User = "dartup-leaf"

// HubOptions returns the leaf-node listener a hub server needs for the
// leaf server: loopback only, a random port, a random password, and no
// compression (nats-server's default s2_auto costs ~6 MB of heap for one
// connection). Pass the returned password to Start.
func HubOptions() (server.LeafNodeOpts, string) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	pw := hex.EncodeToString(b[:])
	return server.LeafNodeOpts{Host: "127.0.0.1", Port: server.RANDOM_PORT, Username: User, Password: pw,
		Compression: server.CompressionOpts{Mode: server.CompressionOff}}, pw
}

// Server is a running leaf server and a connection to it.
type Server struct {
	ns *server.Server
	nc *nats.Conn
}

// Start starts a leaf server that solicits hub (a running server started
// with HubOptions; its options as passed, where nats-server writes the
// chosen port back) with password, and connects to it in process. It
// returns once the hub has the leaf connection.
func Start(hub *server.Server, hubOpts *server.Options, password string) (*Server, error) {
	port := hubOpts.LeafNode.Port
	if port <= 0 {
		return nil, errors.New("leafnode: the hub has no leaf-node port")
	}
	u := &url.URL{Scheme: "nats-leaf", User: url.UserPassword(User, password), Host: "127.0.0.1:" + strconv.Itoa(port)}
	before := hub.NumLeafNodes()
	ns, err := server.NewServer(&server.Options{
		ServerName: "dartup-leaf-" + hub.ID()[:8], DontListen: true, NoSigs: true, NoSystemAccount: true,
		MaxPayload: hubOpts.MaxPayload,
		LeafNode: server.LeafNodeOpts{Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{u},
			Compression: server.CompressionOpts{Mode: server.CompressionOff}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("leafnode: %w", err)
	}
	go ns.Start()
	s := &Server{ns: ns}
	if !ns.ReadyForConnections(10 * time.Second) {
		s.Close()
		return nil, errors.New("leafnode: the leaf server did not start within 10s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for hub.NumLeafNodes() <= before {
		if time.Now().After(deadline) {
			s.Close()
			return nil, errors.New("leafnode: the leaf server did not connect to its hub within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.nc, err = nats.Connect("", nats.InProcessServer(ns), nats.Name("dartup-runner fallback"), nats.MaxReconnects(-1))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("leafnode: connect: %w", err)
	}
	return s, nil
}

// Conn returns the in-process connection to the leaf server.
func (s *Server) Conn() *nats.Conn { return s.nc }

// Close closes the connection and shuts the leaf server down.
func (s *Server) Close() {
	if s.nc != nil {
		s.nc.Close()
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
