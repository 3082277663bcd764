package broker_test

import (
	"context"
	"errors"
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
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// assetNames are every JetStream stream dartup creates, as named in clientsdk
// (KV buckets and object stores are streams named KV_… and OBJ_…).
var assetNames = []string{
	"KV_" + clientsdk.AppsBucket,
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
	cases := []struct {
		name     string
		cfg      broker.Config
		insecure bool // want ErrInsecureBind
		bad      bool // want another error
	}{
		{"loopback", broker.Config{NATSAddr: "127.0.0.1:4222", HTTPAddr: "127.0.0.1:2374"}, false, false},
		{"localhost", broker.Config{NATSAddr: "localhost:4222"}, false, false},
		{"ipv6 loopback", broker.Config{NATSAddr: "[::1]:0"}, false, false},
		{"nats on all", broker.Config{NATSAddr: "0.0.0.0:0"}, true, false},
		{"http on all", broker.Config{NATSAddr: "127.0.0.1:0", HTTPAddr: "0.0.0.0:0"}, true, false},
		{"empty host", broker.Config{NATSAddr: ":4222"}, true, false},
		{"lan address", broker.Config{NATSAddr: "192.0.2.1:4222"}, true, false},
		{"all with password", broker.Config{NATSAddr: "0.0.0.0:0", HTTPAddr: "0.0.0.0:0", RequirePassword: true}, false, false},
		{"all insecure", broker.Config{NATSAddr: "0.0.0.0:0", HTTPAddr: "[::]:0", Insecure: true}, false, false},
		{"no port", broker.Config{NATSAddr: "127.0.0.1"}, false, true},
		{"port too big", broker.Config{NATSAddr: "127.0.0.1:70000"}, false, true},
		{"port not a number", broker.Config{NATSAddr: "127.0.0.1:http"}, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			switch {
			case tc.insecure:
				if !errors.Is(err, broker.ErrInsecureBind) || !strings.Contains(err.Error(), "--require-password") {
					t.Errorf("Check = %v, want ErrInsecureBind naming --require-password", err)
				}
			case tc.bad:
				if err == nil || errors.Is(err, broker.ErrInsecureBind) {
					t.Errorf("Check = %v, want an address error", err)
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
