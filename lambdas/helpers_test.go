package lambdas_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	helloPkg = "./internal/testutil/workers/lambdahello"
	apigwPkg = "./internal/testutil/workers/lambdaapigw"
	rawPkg   = "./internal/testutil/workers/lambdaraw"
)

// rig is a real broker, a runner-side connection with a Manager, and a
// caller connection.
type rig struct {
	t      testing.TB
	b      *broker.Broker
	nc     *nats.Conn // the Manager's
	client *nats.Conn
	m      *lambdas.Manager

	mu     sync.Mutex
	events []clientsdk.Event
}

func newRig(t testing.TB, opts ...lambdas.Option) *rig {
	t.Helper()
	return newRigWith(t, func(*nats.Conn) []lambdas.Option { return opts })
}

// newRigWith is newRig with options built from the Manager's connection.
func newRigWith(t testing.TB, mkOpts func(nc *nats.Conn) []lambdas.Option) *rig {
	t.Helper()
	return newRigOn(t, false, mkOpts)
}

// newDirectRig is newRig with direct mode for native lambdas: the broker
// runs its leaf-node server, the Manager subscribes through it.
func newDirectRig(t testing.TB, opts ...lambdas.Option) *rig {
	t.Helper()
	return newRigOn(t, true, func(*nats.Conn) []lambdas.Option { return opts })
}

func newRigOn(t testing.TB, direct bool, mkOpts func(nc *nats.Conn) []lambdas.Option) *rig {
	t.Helper()
	b := testutil.StartBroker(t, func(c *broker.Config) { c.DirectLambdas = direct })
	r := &rig{t: t, b: b}
	r.nc = testutil.Connect(t, b.NATSURL())
	r.client = testutil.Connect(t, b.NATSURL())
	opts := mkOpts(r.nc)
	if direct {
		opts = append(opts, lambdas.WithFallbackConn(b.FallbackConn()))
	}
	base := []lambdas.Option{lambdas.WithNodeID("n1"), lambdas.WithStopGrace(500 * time.Millisecond),
		lambdas.WithEvents(func(e clientsdk.Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() })}
	if testing.Verbose() {
		base = append(base, lambdas.WithLogger(testutil.TestLogger(t)))
	}
	m, err := lambdas.New(r.nc, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("close manager: %v", err)
		}
	})
	return r
}

func (r *rig) countEvents(kind clientsdk.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// spec returns a valid lambda spec with defaults, changed by mod.
func spec(t testing.TB, name string, rev uint64, mod func(*clientsdk.LambdaSpec)) clientsdk.AppSpec {
	t.Helper()
	s := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand,
		Command: []string{"bootstrap"}, Lambda: &clientsdk.LambdaSpec{}, Revision: rev}
	if mod != nil {
		mod(s.Lambda)
	}
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func dur(d time.Duration) *clientsdk.Duration { x := clientsdk.Duration(d); return &x }

// deploy stores spec in the apps bucket, as a push does (so that the
// brokers know the name: the gateway and dartup.lambda.why.NAME), and
// deploys it on the Manager.
func (r *rig) deploy(spec clientsdk.AppSpec, cmd lambdas.Command) error {
	r.t.Helper()
	js, err := jetstream.New(r.client)
	if err != nil {
		return err
	}
	apps, err := js.KeyValue(context.Background(), clientsdk.AppsBucket)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(spec)
	if _, err := apps.Put(context.Background(), spec.Name, b); err != nil {
		return err
	}
	return r.m.Deploy(spec, cmd)
}

// deployGo builds the Go bootstrap pkg and deploys it as name.
func (r *rig) deployGo(name, pkg string, mod func(*clientsdk.LambdaSpec), env ...string) {
	r.t.Helper()
	bin := testutil.BuildGo(r.t, pkg)
	if err := r.deploy(spec(r.t, name, 1, mod), lambdas.Command{Path: bin, Env: env}); err != nil {
		r.t.Fatal(err)
	}
}

// invoke sends a request to lambda.NAME and returns the body or the service error.
func (r *rig) invoke(name string, data any) ([]byte, *clientsdk.Error) {
	r.t.Helper()
	var b []byte
	switch d := data.(type) {
	case string:
		b = []byte(d)
	case []byte:
		b = d
	default:
		b, _ = json.Marshal(d)
	}
	msg, err := r.client.Request(clientsdk.LambdaSubject(name), b, 30*time.Second)
	if err != nil {
		r.t.Fatalf("request %s: %v", name, err)
	}
	if e := clientsdk.ErrorFromMsg(msg); e != nil {
		return nil, e
	}
	return msg.Data, nil
}

func (r *rig) mustInvoke(name string, data any) string {
	r.t.Helper()
	b, e := r.invoke(name, data)
	if e != nil {
		r.t.Fatalf("invoke %s: %v", name, e)
	}
	return string(b)
}

func (r *rig) pid(name string) int {
	r.t.Helper()
	n, err := strconv.Atoi(r.mustInvoke(name, map[string]any{"pid": true}))
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

func (r *rig) warm(name string) int {
	_, w, _ := r.m.Stats(name)
	return w
}

// alive reports whether process pid exists (and is not a zombie we reaped).
func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

var sleepingRE = regexp.MustCompile(`sleeping pid=(\d+)`)

// watchSleepers returns a channel receiving the pids the hello bootstrap
// announces on stderr before sleeping.
func (r *rig) watchSleepers(name string) <-chan int {
	r.t.Helper()
	ch := make(chan int, 64)
	sub, err := r.client.Subscribe(clientsdk.LogFilter(name, -1), func(m *nats.Msg) {
		if s := sleepingRE.FindSubmatch(m.Data); s != nil {
			n, _ := strconv.Atoi(string(s[1]))
			ch <- n
		}
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.client.Flush(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

func wantCode(t testing.TB, e *clientsdk.Error, code int) {
	t.Helper()
	if e == nil {
		t.Fatalf("want error %d, got success", code)
	}
	if e.Code != code {
		t.Fatalf("want error %d, got %v", code, e)
	}
}

// requestCode sends a request and returns the HTTP-like code of what came
// back: 200 for a result, the service error's code, or -1 for no answer.
func requestCode(nc *nats.Conn, subject string, data []byte) int {
	msg, err := nc.Request(subject, data, 20*time.Second)
	if err != nil {
		return -1
	}
	if e := clientsdk.ErrorFromMsg(msg); e != nil {
		return e.Code
	}
	return 200
}
