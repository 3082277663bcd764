package runner

import (
	"context"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/lambdas"
)

// lambdaRetry is the wait before a failed lambda deploy is tried again.
const lambdaRetry = 5 * time.Second

// lambdaDeploys keeps a node's lambda deployments in line with what plan
// wants hosted: it undeploys what is no longer wanted, deploys new revisions
// off the reconcile loop (resolving a command fetches the artifact), and
// tries a failed revision again after lambdaRetry. A revision counts as
// deployed only once the host took it. Its methods are safe for concurrent use.
type lambdaDeploys struct {
	host    LambdaHost
	resolve func(context.Context, clientsdk.AppSpec) (lambdas.Command, error)
	// failed is called with a deploy's error (after which it is retried).
	failed func(clientsdk.AppSpec, error)
	// undeployed is called once a lambda is no longer hosted here.
	undeployed func(name string)
	done       func() // called after each deploy attempt (to reconcile again)

	mu        sync.Mutex
	deployed  map[string]uint64 // name → deployed spec revision
	deploying map[string]bool
	failures  map[string]failedDeploy
	wg        sync.WaitGroup
}

// failedDeploy remembers a lambda revision that could not be deployed.
type failedDeploy struct {
	rev     uint64
	retryAt time.Time
}

func newLambdaDeploys(host LambdaHost, resolve func(context.Context, clientsdk.AppSpec) (lambdas.Command, error),
	failed func(clientsdk.AppSpec, error), undeployed func(string), done func()) *lambdaDeploys {
	return &lambdaDeploys{host: host, resolve: resolve, failed: failed, undeployed: undeployed, done: done,
		deployed: map[string]uint64{}, deploying: map[string]bool{}, failures: map[string]failedDeploy{}}
}

// reconcile undeploys the lambdas not in want and starts deploying those
// whose revision is not deployed yet (not while one is in progress, nor
// before a failed revision's retry time).
func (d *lambdaDeploys) reconcile(ctx context.Context, want map[string]clientsdk.AppSpec, now time.Time) {
	if d.host == nil {
		return
	}
	d.mu.Lock()
	var gone []string
	for name := range d.deployed {
		if _, ok := want[name]; !ok {
			gone = append(gone, name)
			delete(d.deployed, name)
		}
	}
	var todo []clientsdk.AppSpec
	for name, spec := range want {
		if d.deployed[name] == spec.Revision || d.deploying[name] {
			continue
		}
		if f, ok := d.failures[name]; ok && f.rev == spec.Revision && now.Before(f.retryAt) {
			continue
		}
		d.deploying[name] = true
		todo = append(todo, spec)
	}
	d.mu.Unlock()
	for _, name := range gone {
		d.host.Undeploy(name)
		d.undeployed(name)
	}
	for _, spec := range todo {
		d.wg.Add(1)
		go d.deploy(ctx, spec)
	}
}

func (d *lambdaDeploys) deploy(ctx context.Context, spec clientsdk.AppSpec) {
	defer d.wg.Done()
	cmd, err := d.resolve(ctx, spec)
	if err == nil {
		err = d.host.Deploy(spec, cmd)
	}
	d.mu.Lock()
	delete(d.deploying, spec.Name)
	if err == nil {
		d.deployed[spec.Name] = spec.Revision
		delete(d.failures, spec.Name)
	} else {
		d.failures[spec.Name] = failedDeploy{rev: spec.Revision, retryAt: time.Now().Add(lambdaRetry)}
	}
	d.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		d.failed(spec, err)
	}
	d.done()
}

// names returns the lambdas deployed here, sorted.
func (d *lambdaDeploys) names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedKeys(d.deployed)
}

// stop waits for deploys in progress, then undeploys everything.
func (d *lambdaDeploys) stop() {
	d.wg.Wait()
	if d.host == nil {
		return
	}
	d.mu.Lock()
	names := sortedKeys(d.deployed)
	d.deployed = map[string]uint64{}
	d.mu.Unlock()
	for _, n := range names {
		d.host.Undeploy(n)
	}
}
