package broker_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/datadir"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// assetNames are every JetStream stream dartup creates, as named in clientsdk
// (KV buckets and object stores are streams named KV_… and OBJ_…).
var assetNames = []string{
	"KV_" + clientsdk.AppsBucket,
	"KV_" + clientsdk.RevisionsBucket,
	"KV_" + clientsdk.NodesBucket,
	"KV_" + clientsdk.PlacementBucket,
	"KV_" + clientsdk.StatusBucket,
	"KV_" + clientsdk.SecretsBucket,
	"OBJ_" + clientsdk.ArtifactsBucket,
	clientsdk.LogsStream,
	clientsdk.EventsStream,
}

func streamNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var names []string
	l := js.StreamNames(ctx)
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("list streams: %v", err)
	}
	sort.Strings(names)
	return names
}

func jsFor(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := testutil.Connect(t, url, opts...)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func TestStartReadyAndHealthz(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	if !b.Ready() {
		t.Fatal("Ready() is false after Start")
	}
	if !strings.HasPrefix(b.NATSURL(), "nats://127.0.0.1:") || strings.HasSuffix(b.NATSURL(), ":0") {
		t.Errorf("NATSURL = %q, want a real loopback port", b.NATSURL())
	}
	resp, err := http.Get(b.HTTPURL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz = %d, want 200", resp.StatusCode)
	}
	resp, err = http.Get(b.HTTPURL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET / = %d %q, want 404 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, err := os.Stat(filepath.Join(b.DataDir(), "jetstream")); err != nil {
		t.Errorf("no jetstream dir in the data dir: %v", err)
	}
}

func TestInfoVerb(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	si, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if si.DataDir != b.DataDir() || si.NATSURL != b.NATSURL() || si.HTTPURL != b.HTTPURL() ||
		si.NodeID == "" || si.ServerVersion == "" || si.Version != "0.0.0-test" || si.ServerName != b.ServerName() {
		t.Errorf("info = %+v", si)
	}
	if si.JetStream.Streams < len(assetNames) {
		t.Errorf("info says %d streams, want at least %d", si.JetStream.Streams, len(assetNames))
	}
	apps, err := c.List(context.Background())
	if err != nil || len(apps) != 0 {
		t.Errorf("List on a fresh server = %v, %v; want empty", apps, err)
	}
}

func TestEnsureAssetsIdempotent(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	_, js := jsFor(t, b.NATSURL())
	want := streamNames(t, js)
	for _, n := range assetNames {
		if !slices.Contains(want, n) {
			t.Errorf("no stream %s after Start (have %v)", n, want)
		}
	}
	ctx := context.Background()
	before, err := js.Stream(ctx, "KV_"+clientsdk.AppsBucket)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := broker.EnsureAssets(ctx, js, broker.DefaultAssetLimits); err != nil {
			t.Fatalf("EnsureAssets call %d on existing assets: %v", i+1, err)
		}
	}
	if got := streamNames(t, js); !slices.Equal(got, want) {
		t.Fatalf("streams after EnsureAssets twice = %v, want %v", got, want)
	}
	after, err := js.Stream(ctx, "KV_"+clientsdk.AppsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if before.CachedInfo().Created != after.CachedInfo().Created {
		t.Error("EnsureAssets re-created the apps bucket instead of keeping it")
	}
	logs, err := js.Stream(ctx, clientsdk.LogsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := logs.CachedInfo().Config
	if cfg.MaxAge != broker.DefaultAssetLimits.LogsMaxAge || cfg.MaxBytes != broker.DefaultAssetLimits.LogsMaxBytes ||
		cfg.Storage != jetstream.FileStorage || cfg.Discard != jetstream.DiscardOld {
		t.Errorf("logs stream limits = age %s bytes %d storage %s discard %s", cfg.MaxAge, cfg.MaxBytes, cfg.Storage, cfg.Discard)
	}
}

func TestRestartKeepsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func() *broker.Broker {
		return testutil.StartBroker(t, func(c *broker.Config) { c.DataDir = dir })
	}
	b := start()
	_, js := jsFor(t, b.NATSURL())
	want := streamNames(t, js)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, clientsdk.AppsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "survivor", []byte(`{"name":"survivor"}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}

	b2 := start()
	_, js2 := jsFor(t, b2.NATSURL())
	if got := streamNames(t, js2); !slices.Equal(got, want) {
		t.Fatalf("streams after restart = %v, want %v", got, want)
	}
	kv2, err := js2.KeyValue(ctx, clientsdk.AppsBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv2.Get(ctx, "survivor")
	if err != nil || string(e.Value()) != `{"name":"survivor"}` {
		t.Fatalf("key written before the restart: %v, %v", e, err)
	}
}

func TestDataDirLock(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	_, err := broker.Start(context.Background(), broker.Config{DataDir: b.DataDir(), NATSAddr: "127.0.0.1:0"})
	if !errors.Is(err, broker.ErrDataDirInUse) {
		t.Fatalf("second Start on the same data dir: %v, want ErrDataDirInUse", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("error does not name the pid holding the lock: %v", err)
	}
	if !b.Ready() {
		t.Fatal("the first broker is no longer ready")
	}
	resp, err := http.Get(b.HTTPURL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("first broker /healthz = %d", resp.StatusCode)
	}
}

func TestStartUnwindsOnFailure(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	dir := t.TempDir()
	// The HTTP port is taken by b: Start must fail and release the data dir.
	_, err := broker.Start(context.Background(), broker.Config{DataDir: dir, NATSAddr: "127.0.0.1:0", HTTPAddr: strings.TrimPrefix(b.HTTPURL(), "http://")})
	if err == nil || !strings.Contains(err.Error(), "cannot listen") {
		t.Fatalf("Start on a busy HTTP port: %v", err)
	}
	b2, err := broker.Start(context.Background(), broker.Config{DataDir: dir, NATSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("Start after a failed Start on the same dir: %v", err)
	}
	_ = b2.Shutdown(context.Background())
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	selfSigned := broker.TLSConfig{SelfSigned: true}
	routes := []string{"nats://192.0.2.2:6222"}
	const secret = "0123456789abcdef"
	cases := []struct {
		name    string
		cfg     broker.Config
		missing string // want an *InsecureBindError with this Missing
		bad     bool   // want another error
	}{
		{"loopback", broker.Config{NATSAddr: "127.0.0.1:4222", HTTPAddr: "127.0.0.1:2374"}, "", false},
		{"localhost", broker.Config{NATSAddr: "localhost:4222"}, "", false},
		{"ipv6 loopback", broker.Config{NATSAddr: "[::1]:0"}, "", false},
		{"loopback with TLS", broker.Config{NATSAddr: "127.0.0.1:0", TLS: selfSigned}, "", false},
		{"nats on all", broker.Config{NATSAddr: "0.0.0.0:0"}, broker.MissingPassword, false},
		{"http on all", broker.Config{NATSAddr: "127.0.0.1:0", HTTPAddr: "0.0.0.0:0"}, broker.MissingPassword, false},
		{"empty host", broker.Config{NATSAddr: ":4222"}, broker.MissingPassword, false},
		{"lan address", broker.Config{NATSAddr: "192.0.2.1:4222"}, broker.MissingPassword, false},
		{"lan address with TLS, no password", broker.Config{NATSAddr: "192.0.2.1:4222", TLS: selfSigned}, broker.MissingPassword, false},
		{"all with password, no TLS", broker.Config{NATSAddr: "0.0.0.0:0", HTTPAddr: "0.0.0.0:0", RequirePassword: true}, broker.MissingTLS, false},
		{"all with password and TLS", broker.Config{NATSAddr: "0.0.0.0:0", HTTPAddr: "0.0.0.0:0", RequirePassword: true, TLS: selfSigned}, "", false},
		{"all with password and a certificate", broker.Config{NATSAddr: "0.0.0.0:0", RequirePassword: true, TLS: broker.TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}}, "", false},
		{"all insecure", broker.Config{NATSAddr: "0.0.0.0:0", HTTPAddr: "[::]:0", Insecure: true}, "", false},
		{"cluster on loopback, no passwords", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:6222", Routes: routes}, "", false},
		{"cluster on loopback with passwords, no secret", broker.Config{NATSAddr: "127.0.0.1:0", RequirePassword: true, ClusterAddr: "127.0.0.1:6222", Routes: routes}, broker.MissingClusterSecret, false},
		{"cluster on loopback with passwords and secret", broker.Config{NATSAddr: "127.0.0.1:0", RequirePassword: true, ClusterAddr: "127.0.0.1:6222", Routes: routes, ClusterSecret: secret}, "", false},
		{"cluster on lan, no secret", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "192.0.2.1:6222", Routes: routes, TLS: selfSigned}, broker.MissingClusterSecret, false},
		{"cluster on lan, no TLS", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "0.0.0.0:6222", Routes: routes, ClusterSecret: secret}, broker.MissingTLS, false},
		{"cluster on lan with secret and TLS", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "192.0.2.1:6222", Routes: routes, ClusterSecret: secret, TLS: selfSigned}, "", false},
		{"cluster on lan with secret and route TLS only", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "192.0.2.1:6222", Routes: routes, ClusterSecret: secret,
			TLS: broker.TLSConfig{ClusterCertFile: "c.pem", ClusterKeyFile: "k.pem", ClusterCAFile: "ca.pem"}}, "", false},
		{"cluster on lan insecure", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "192.0.2.1:6222", Routes: routes, Insecure: true}, "", false},
		{"no port", broker.Config{NATSAddr: "127.0.0.1"}, "", true},
		{"port too big", broker.Config{NATSAddr: "127.0.0.1:70000"}, "", true},
		{"port not a number", broker.Config{NATSAddr: "127.0.0.1:http"}, "", true},
		{"short secret", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:6222", Routes: routes, ClusterSecret: "short"}, "", true},
		{"secret in a route URL", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:6222", Routes: []string{"nats://u:p@192.0.2.2:6222"}}, "", true},
		{"routes without a cluster address", broker.Config{NATSAddr: "127.0.0.1:0", Routes: routes}, "", true},
		{"cluster address without routes", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:6222"}, "", true},
		{"cert without key", broker.Config{NATSAddr: "127.0.0.1:0", TLS: broker.TLSConfig{CertFile: "c.pem"}}, "", true},
		{"self-signed and a cert", broker.Config{NATSAddr: "127.0.0.1:0", TLS: broker.TLSConfig{SelfSigned: true, CertFile: "c.pem", KeyFile: "k.pem"}}, "", true},
		{"verify clients without a CA", broker.Config{NATSAddr: "127.0.0.1:0", TLS: broker.TLSConfig{SelfSigned: true, VerifyClients: true}}, "", true},
		{"verify clients without TLS", broker.Config{NATSAddr: "127.0.0.1:0", TLS: broker.TLSConfig{CAFile: "ca.pem", VerifyClients: true}}, "", true},
		{"TLS routes without a CA", broker.Config{NATSAddr: "127.0.0.1:0", ClusterAddr: "127.0.0.1:6222", Routes: routes, TLS: broker.TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			var ib *broker.InsecureBindError
			switch {
			case tc.missing != "":
				if !errors.As(err, &ib) || ib.Missing != tc.missing || !errors.Is(err, broker.ErrInsecureBind) || !strings.Contains(err.Error(), "--insecure") {
					t.Errorf("Check = %v, want an InsecureBindError for a missing %s that names --insecure", err, tc.missing)
				}
			case tc.bad:
				if err == nil || errors.Is(err, broker.ErrInsecureBind) {
					t.Errorf("Check = %v, want a settings error", err)
				}
			default:
				if err != nil {
					t.Errorf("Check = %v, want nil", err)
				}
			}
		})
	}
}

func TestInsecureStartRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := broker.Start(context.Background(), broker.Config{DataDir: dir, NATSAddr: "0.0.0.0:0"})
	if !errors.Is(err, broker.ErrInsecureBind) {
		t.Fatalf("Start on 0.0.0.0 without passwords: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err == nil {
		t.Error("a refused Start created a JetStream store")
	}
}

// A data dir must be dartup's, new or empty: a careless --data never
// chmods or fills someone else's directory.
func TestDataDirMustBeDartups(t *testing.T) {
	notEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(notEmpty, "report.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{"a directory with other files": notEmpty}
	if os.Geteuid() == 0 {
		other := t.TempDir()
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		cases["a directory of another user"] = other
	}
	for name, dir := range cases {
		t.Run(name, func(t *testing.T) {
			before, _ := os.Stat(dir)
			_, err := broker.Start(context.Background(), broker.Config{DataDir: dir, NATSAddr: "127.0.0.1:0"})
			if !errors.Is(err, datadir.ErrNotOurs) {
				t.Fatalf("start on %s: %v, want ErrNotOurs", dir, err)
			}
			if after, _ := os.Stat(dir); after.Mode() != before.Mode() {
				t.Fatalf("the directory's mode changed: %v → %v", before.Mode(), after.Mode())
			}
		})
	}
	// An empty directory, or one dartup made, is taken.
	empty := t.TempDir()
	b, err := broker.Start(context.Background(), broker.Config{DataDir: empty, NATSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Shutdown(context.Background())
	b, err = broker.Start(context.Background(), broker.Config{DataDir: empty, NATSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("a data dir dartup made: %v", err)
	}
	_ = b.Shutdown(context.Background())
}

// A NATS port in use fails the start at once with the server's reason,
// instead of waiting for a server that will never be ready.
func TestStartFailsFastOnAPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = broker.Start(context.Background(), broker.Config{DataDir: t.TempDir(), NATSAddr: ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a port in use: %v", err)
	}
}
