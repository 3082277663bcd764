package runner

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
)

// portPool hands out free TCP ports for the instances of apps with HTTP
// routes and no fixed --port. It picks them below the kernel's ephemeral
// range (ip_local_port_range), where outgoing connections never take a
// port between the pick and the worker's bind, checks that nothing listens
// there, and keeps each from being given twice while a worker holds it.
type portPool struct {
	mu    sync.Mutex
	inUse map[int]bool
	// lo and hi bound the ports it picks from.
	lo, hi int
}

func newPortPool() *portPool {
	lo, hi := portRange(ephemeralLow())
	return &portPool{inUse: map[int]bool{}, lo: lo, hi: hi}
}

// ephemeralLow is the lowest port the kernel gives outgoing connections
// (32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if f := strings.Fields(string(b)); err == nil && len(f) == 2 {
		if lo, err := strconv.Atoi(f[0]); err == nil {
			return lo
		}
	}
	return 32768
}

// portRange is where instances' ports are picked: from 10000 up to the
// ephemeral range, or, when that starts too low to leave room, above it.
func portRange(ephemeralLow int) (lo, hi int) {
	if ephemeralLow-10000 >= 1000 {
		return 10000, ephemeralLow - 1
	}
	return 0, 0 // let the kernel choose (":0")
}

// take returns a free port, reserved until release.
func (p *portPool) take() (int, error) {
	for range 50 {
		port, err := p.candidate()
		if err != nil {
			return 0, err
		}
		if port == 0 {
			continue
		}
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

// candidate is a port nothing listens on now: a random one of the pool's
// range, or one the kernel picks when the pool has none.
func (p *portPool) candidate() (int, error) {
	if p.hi > p.lo {
		port := p.lo + rand.IntN(p.hi-p.lo+1)
		if portFree(port) != nil {
			return 0, nil // taken: the caller tries another
		}
		return port, nil
	}
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

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
