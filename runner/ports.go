package runner

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
)

// portPool hands out free TCP ports for the instances of apps with HTTP
// routes and no fixed --port: the kernel picks a free one, and the pool
// keeps it from being given twice while a worker holds it (between the
// pick and the worker's bind, the kernel could pick it again).
type portPool struct {
	mu    sync.Mutex
	inUse map[int]bool
}

func newPortPool() *portPool { return &portPool{inUse: map[int]bool{}} }

// take returns a free port, reserved until release.
func (p *portPool) take() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		p.mu.Lock()
		free := !p.inUse[port]
		if free {
			p.inUse[port] = true
		}
		p.mu.Unlock()
		if free {
			return port, nil
		}
	}
	return 0, errNoFreePort
}

// portFree reports (nil) whether nothing listens on port on this machine.
func portFree(port int) error {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	return ln.Close()
}

// release gives port back.
func (p *portPool) release(port int) {
	p.mu.Lock()
	delete(p.inUse, port)
	p.mu.Unlock()
}

var errNoFreePort = errors.New("no free TCP port for the instance")

// hostPort joins the node's advertised host and a port.
func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// localAddress is the address of this machine on the route to nc's
// server: the default advertised host.
func localAddress(nc *nats.Conn) string { return AdvertiseFor(nc.ConnectedUrl()) }

// AdvertiseFor returns the address of this machine on the route to the
// server at serverURL (nats://host:port): what other machines reach it at.
// A loopback, in-process or unknown server gives 127.0.0.1.
func AdvertiseFor(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil || u.Hostname() == "" {
		return "127.0.0.1"
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() {
		return "127.0.0.1"
	}
	port := u.Port()
	if port == "" {
		port = "4222"
	}
	c, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), port)) // no packet is sent
	if err != nil {
		return "127.0.0.1"
	}
	defer func() { _ = c.Close() }()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
