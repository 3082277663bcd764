package clientsdk_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/lambdas"
	"github.com/dartup/dartup/runner"
	"github.com/nats-io/nats.go"
)

// exampleURL is the NATS URL of the server the examples run against: a real
// embedded dartup server with a runner, started by TestMain.
var exampleURL string

func startExampleServer() (stop func(), err error) {
	dir, err := os.MkdirTemp("", "dartup-example-")
	if err != nil {
		return nil, err
	}
	// As root, apps run as users of their own and must reach their work
	// dirs beside the data dir.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	ctx := context.Background()
	b, err := broker.Start(ctx, broker.Config{DataDir: dir, NATSAddr: "127.0.0.1:0", Version: "0.0.0-example"})
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(b.NATSURL())
	if err != nil {
		return nil, err
	}
	host, err := lambdas.New(nc, lambdas.WithNodeID("example-node"))
	if err != nil {
		return nil, err
	}
	r, err := runner.New(ctx, nc, runner.WithNodeID("example-node"), runner.WithDataDir(dir), runner.WithNATSURL(b.NATSURL()),
		runner.WithLambdaHost(host))
	if err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	exampleURL = b.NATSURL()
	return func() {
		_ = r.Stop(ctx)
		_ = host.Close(ctx)
		nc.Close()
		_ = b.Shutdown(ctx)
		os.RemoveAll(dir)
		os.RemoveAll(dir + "-work") // the apps' working dirs, beside the data dir
	}, nil
}

// waitRunning polls until app runs n instances (examples read best without it).
func waitRunning(c *clientsdk.Client, app string, n int) {
	for range 400 {
		if info, err := c.Describe(context.Background(), app); err == nil && info.Summary.Running == n {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func Example() {
	ctx := context.Background()
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(exampleURL))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	// A daemon: runs at once, restarted when it exits.
	_, err = c.Push(ctx, clientsdk.AppSpec{Name: "ticker", Runtime: clientsdk.RuntimeCommand,
		Command: []string{"/bin/sh", "-c", "echo started; exec sleep 600"}}, "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	waitRunning(c, "ticker", 1)
	apps, _ := c.List(ctx)
	for _, a := range apps {
		if a.Name == "ticker" {
			fmt.Println(a.Name, a.Kind, a.State, a.Running)
		}
	}
	_ = c.Remove(ctx, "ticker")
	// Output: ticker daemon alive 1
}

func ExampleClient_Push() {
	ctx := context.Background()
	c, _ := clientsdk.Connect(ctx, clientsdk.WithURL(exampleURL))
	defer c.Close()
	// Push a file: "/bin/true" stands for a compiled Dart program
	// (`dart compile exe`); the runtime is detected from the file.
	var last int64
	spec, err := c.Push(ctx, clientsdk.AppSpec{Name: "tool", Instances: 2,
		Restart: clientsdk.RestartPolicy{NoAutoRestart: true}}, "/bin/true", func(sent, total int64) { last = sent })
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(spec.Name, spec.Runtime, spec.Instances, spec.Artifact.Size == last, len(spec.Artifact.SHA256))
	_ = c.Remove(ctx, "tool")
	// Output: tool exe 2 true 64
}

func ExampleClient_Invoke() {
	ctx := context.Background()
	c, _ := clientsdk.Connect(ctx, clientsdk.WithURL(exampleURL))
	defer c.Close()
	// A stdio lambda gets the event on stdin and answers with its stdout;
	// `cat` echoes it. (Runtime API lambdas work the same way for the caller.)
	_, err := c.Push(ctx, clientsdk.AppSpec{Name: "echo", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand,
		Command: []string{"/bin/cat"}, Lambda: &clientsdk.LambdaSpec{Protocol: clientsdk.ProtocolStdio}}, "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var out []byte
	for range 200 { // until a node hosts it
		if out, err = c.Invoke(ctx, "echo", []byte(`{"hello":"world"}`)); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	fmt.Println(string(out))
	_, err = c.Invoke(ctx, "missing", nil)
	if e, ok := clientsdk.AsError(err); ok {
		fmt.Println(e.Code, e.Type)
	}
	_ = c.Remove(ctx, "echo")
	// Output:
	// {"hello":"world"}
	// 404 NotFound
}

func ExampleClient_InvokeAsync() {
	ctx := context.Background()
	c, _ := clientsdk.Connect(ctx, clientsdk.WithURL(exampleURL))
	defer c.Close()
	// A lambda that always fails (`false` exits 1), tried again once after
	// 10 ms; then its event goes to the dead letters.
	one := 1
	_, err := c.Push(ctx, clientsdk.AppSpec{Name: "flaky", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand,
		Command: []string{"/bin/false"}, Lambda: &clientsdk.LambdaSpec{Protocol: clientsdk.ProtocolStdio,
			Async: &clientsdk.AsyncSpec{Retries: &one, RetryBackoff: []clientsdk.Duration{clientsdk.Duration(10 * time.Millisecond)}}}}, "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	id, err := c.InvokeAsync(ctx, "flaky", []byte(`{"order":42}`)) // returns once stored
	if err != nil {
		fmt.Println(err)
		return
	}
	var dl clientsdk.DeadLetter
	for range 400 { // until it failed twice
		if l, err := c.DeadLetters(ctx, "flaky"); err == nil && len(l.DeadLetters) > 0 {
			dl = l.DeadLetters[0]
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	fmt.Println(dl.RequestID == id, dl.Attempts, dl.ErrorCode)
	_ = c.Remove(ctx, "flaky")
	// Output: true 2 500
}

func ExampleClient_Kill() {
	ctx := context.Background()
	c, _ := clientsdk.Connect(ctx, clientsdk.WithURL(exampleURL))
	defer c.Close()
	_, _ = c.Push(ctx, clientsdk.AppSpec{Name: "svc", Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/sleep", "600"}}, "", nil)
	waitRunning(c, "svc", 1)
	_, _ = c.Kill(ctx, "svc") // stays stopped, across restarts, until Start
	s, _ := c.WaitStopped(ctx, "svc")
	fmt.Println(s.State, s.Message)
	_, _ = c.Start(ctx, "svc")
	waitRunning(c, "svc", 1)
	info, _ := c.Describe(ctx, "svc")
	fmt.Println(info.Summary.State, info.Summary.Running)
	_ = c.Remove(ctx, "svc")
	// Output:
	// dead stopped
	// alive 1
}

func ExampleClient_Logs() {
	ctx := context.Background()
	c, _ := clientsdk.Connect(ctx, clientsdk.WithURL(exampleURL))
	defer c.Close()
	_, _ = c.Push(ctx, clientsdk.AppSpec{Name: "greeter", Runtime: clientsdk.RuntimeCommand,
		Command: []string{"/bin/sh", "-c", "echo hello from $DARTUP_APP; echo oops >&2; exec sleep 600"}}, "", nil)
	// Follow the output until both lines have arrived.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seen := 0
	_ = c.Logs(fctx, "greeter", clientsdk.LogsOptions{Instance: -1, Follow: true}, func(l clientsdk.LogLine) {
		fmt.Printf("#%d %s: %s\n", l.Instance, l.Stream, l.Line)
		if seen++; seen == 2 {
			cancel()
		}
	})
	_ = c.Remove(ctx, "greeter")
	// Unordered output:
	// #0 out: hello from greeter
	// #0 err: oops
}

func ExampleClient_Nodes() {
	ctx := context.Background()
	c, _ := clientsdk.Connect(ctx, clientsdk.WithURL(exampleURL))
	defer c.Close()
	nodes, _ := c.Nodes(ctx)
	for _, n := range nodes {
		fmt.Println(n.ID, n.Draining)
	}
	info, _ := c.Info(ctx)
	fmt.Println(info.Version, strings.HasPrefix(info.NATSURL, "nats://"))
	// Output:
	// example-node false
	// 0.0.0-example true
}

func ExampleClient_Rollback() {
	ctx := context.Background()
	c, _ := clientsdk.Connect(ctx, clientsdk.WithURL(exampleURL))
	defer c.Close()
	for _, secs := range []string{"600", "700"} {
		_, _ = c.Push(ctx, clientsdk.AppSpec{Name: "sleeper", Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/sleep", secs}}, "", nil)
	}
	s, err := c.Rollback(ctx, "sleeper", 0) // 0: the version before the current one
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("version %d is a rollback of version %d\n", s.Version, s.RollbackOf)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	outcome, _, _ := c.WaitDeployed(wctx, "sleeper", s.Revision) // rolled out as after a push
	fmt.Println(outcome)
	h, _ := c.History(ctx, "sleeper")
	for _, v := range h.Versions {
		fmt.Println(v.Version, v.Current, v.RollbackOf, v.Changes)
	}
	_, err = c.Rollback(ctx, "sleeper", 1)
	fmt.Println(err)
	_ = c.Remove(ctx, "sleeper")
	// Output:
	// version 3 is a rollback of version 1
	// running
	// 3 true 1 [command: ["/bin/sleep","700"] → ["/bin/sleep","600"]]
	// 2 false 0 [command: ["/bin/sleep","600"] → ["/bin/sleep","700"]]
	// 1 false 0 []
	// version 1 of sleeper is the same as its current version 3: it already runs that (409 AlreadyRunning)
}
