package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const clusterSecret = "route-secret-5d0c9b7e1a24"

// logSink is a nats-server logger that keeps the lines it is given.
type logSink struct{ buf testutil.SyncBuffer }

func (l *logSink) log(f string, v ...any) { fmt.Fprintf(&l.buf, f+"\n", v...) }

// Noticef logs a notice.
func (l *logSink) Noticef(f string, v ...any) { l.log(f, v...) }

// Warnf logs a warning.
func (l *logSink) Warnf(f string, v ...any) { l.log(f, v...) }

// Fatalf logs and does not exit.
func (l *logSink) Fatalf(f string, v ...any) { l.log(f, v...) }

// Errorf logs an error.
func (l *logSink) Errorf(f string, v ...any) { l.log(f, v...) }

// Debugf logs a debug line.
func (l *logSink) Debugf(f string, v ...any) { l.log(f, v...) }

// Tracef logs nothing.
func (l *logSink) Tracef(string, ...any) {}

// bareServer starts a plain nats-server, as anyone could, that routes into
// routeURL with the cluster name dartup uses and the given route TLS.
func bareServer(t *testing.T, routeURL string, tc *tls.Config) (*server.Server, *logSink) {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "dartup", Host: "127.0.0.1", Port: server.RANDOM_PORT, TLSConfig: tc, TLSTimeout: 5},
	}
	if routeURL != "" {
		opts.Routes = server.RoutesFromStr(routeURL)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	sink := &logSink{}
	ns.SetLogger(sink, true, false)
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("bare nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns, sink
}

// withSecret returns routeURL with the route user and secret in it.
func withSecret(routeURL, secret string) string {
	if secret == "" {
		return routeURL
	}
	return strings.Replace(routeURL, "nats://", "nats://dartup-route:"+secret+"@", 1)
}

// seesNothing checks, through a client of the bare server, that no dartup
// control API and no JetStream are reachable from it.
func seesNothing(t *testing.T, bare *server.Server) {
	t.Helper()
	nc := testutil.Connect(t, bare.ClientURL())
	_, err := nc.Request(clientsdk.APISubject(clientsdk.VerbList), nil, 2*time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("request %s through the bare server: %v, want no responders", clientsdk.APISubject(clientsdk.VerbList), err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err == nil {
		t.Error("JetStream answered through the bare server")
	}
	if n := bare.NumRoutes(); n != 0 {
		t.Errorf("the bare server has %d routes", n)
	}
}

// TestRoutesNeedTheClusterSecret is the cluster back door: with
// --require-password, a bare nats-server that routes into the cluster port
// without the cluster secret (or with a wrong one) is refused and can reach
// neither the control API nor JetStream; with the secret, it routes in and
// reaches the API (which shows that the refusals are not vacuous).
func TestRoutesNeedTheClusterSecret(t *testing.T) {
	t.Parallel()
	brokers, _ := startPair(t, false)
	route := brokers[0].ClusterURL()
	for _, tc := range []struct{ name, secret string }{{"no credential", ""}, {"wrong secret", "not-the-secret-but-long"}} {
		t.Run(tc.name, func(t *testing.T) {
			bare, sink := bareServer(t, withSecret(route, tc.secret), nil)
			testutil.WaitFor(t, 10*time.Second, "the route to be refused", func() bool {
				return strings.Contains(sink.buf.String(), "Authorization Violation")
			})
			seesNothing(t, bare)
		})
	}
	t.Run("the secret", func(t *testing.T) {
		bare, _ := bareServer(t, withSecret(route, clusterSecret), nil)
		nc := testutil.Connect(t, bare.ClientURL())
		testutil.WaitFor(t, 10*time.Second, "the control API through the route", func() bool {
			_, err := nc.Request(clientsdk.APISubject(clientsdk.VerbList), nil, time.Second)
			return err == nil
		})
	})
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// routeTLSConfig is what a bare server would route with: cert and key from
// pki, verifying peers against pki.
func routeTLSConfig(t *testing.T, pki *testutil.PKI, name string) *tls.Config {
	t.Helper()
	certFile, keyFile := pki.Issue(t, name, "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(pki.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// startPair clusters two brokers with the cluster secret and passwords, and
// checks that a message published on one reaches a subscriber on the other.
// With TLS, both use self-signed certificates from one CA (copied into each
// DATA/tls, as docs/operations.md says), returned as pki.
func startPair(t *testing.T, withTLS bool) (brokers []*broker.Broker, pki *testutil.PKI) {
	t.Helper()
	if withTLS {
		pki = testutil.NewPKI(t, "dartup cluster CA")
	}
	ports := freePorts(t, 2)
	brokers = make([]*broker.Broker, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		dir := t.TempDir()
		if withTLS {
			seedCA(t, pki, filepath.Join(dir, broker.TLSDirName))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			brokers[i] = testutil.StartBroker(t, func(c *broker.Config) {
				c.DataDir, c.ServerName, c.RequirePassword = dir, fmt.Sprintf("s%d", i+1), true
				c.ClusterAddr, c.ClusterSecret = fmt.Sprintf("127.0.0.1:%d", ports[i]), clusterSecret
				c.Routes = []string{fmt.Sprintf("nats://127.0.0.1:%d", ports[1-i])}
				c.TLS.SelfSigned = withTLS
			})
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	conn := func(b *broker.Broker) *nats.Conn {
		addUser(t, b, "alice", alicePW)
		opts := []nats.Option{nats.UserInfo("alice", alicePW)}
		if withTLS {
			opts = append(opts, nats.RootCAs(b.SelfSignedCA()))
		}
		return testutil.Connect(t, b.NATSURL(), opts...)
	}
	sub := conn(brokers[1])
	got, err := sub.SubscribeSync("cross.route")
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Flush()
	pub := conn(brokers[0])
	testutil.WaitFor(t, 10*time.Second, "a message across the route", func() bool {
		_ = pub.Publish("cross.route", []byte("hi"))
		_, err := got.NextMsg(50 * time.Millisecond)
		return err == nil
	})
	return brokers, pki
}

// seedCA copies pki's CA certificate and key into a data dir's tls folder.
func seedCA(t *testing.T, pki *testutil.PKI, tlsDir string) {
	t.Helper()
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{pki.CAFile: broker.SelfSignedCAFile, pki.CAKeyFile: "ca-key.pem"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tlsDir, dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTLSRoutes: two brokers form one cluster over mutual TLS (startPair). A
// bare server is refused without TLS, with a certificate of another CA, and
// with a certificate of the right CA but no secret.
func TestTLSRoutes(t *testing.T) {
	t.Parallel()
	brokers, pki := startPair(t, true)
	other := testutil.NewPKI(t, "someone else's CA")
	for _, tc := range []struct {
		name, secret string
		tls          *tls.Config
		refusal      string // in the bare server's log
	}{
		{"no TLS", clusterSecret, nil, "Router connection closed"},
		{"another CA's certificate", clusterSecret, routeTLSConfig(t, other, "intruder"), "certificate"},
		{"the CA's certificate without the secret", "", routeTLSConfig(t, pki, "insider"), "Authorization Violation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bare, sink := bareServer(t, withSecret(brokers[0].ClusterURL(), tc.secret), tc.tls)
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(sink.buf.String())
				}
			})
			testutil.WaitFor(t, 10*time.Second, "the route to be refused", func() bool {
				return strings.Contains(sink.buf.String(), tc.refusal)
			})
			seesNothing(t, bare)
		})
	}
}
