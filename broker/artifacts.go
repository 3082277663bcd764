package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// verifyWait bounds how long a push waits for the verification of an
// artifact before answering 503 "Unavailable" (clients try again; their own
// per-try timeout is 10 s). The verification goes on meanwhile, and the
// retry waits for the same one.
const verifyWait = 8 * time.Second

// verifyTimeout bounds one verification (2 GiB at 4 MB/s).
const verifyTimeout = 10 * time.Minute

// objectVersion identifies one stored version of an object: a Put that
// replaces an object gets a new NUID and modification time.
type objectVersion struct {
	name    string
	nuid    string
	modTime int64
	size    uint64
	chunks  uint32
	digest  string
}

func versionOf(oi *jetstream.ObjectInfo) objectVersion {
	return objectVersion{name: oi.Name, nuid: oi.NUID, modTime: oi.ModTime.UnixNano(), size: oi.Size, chunks: oi.Chunks, digest: oi.Digest}
}

// artifactVerifier checks that an artifact object holds the bytes its
// content-addressed name ("sha256/HEX") says, by reading it through (streamed,
// never whole in memory) and hashing it. The objects are written by clients,
// so a same-size object with other bytes under a file's name would otherwise
// poison every later push of that file. A verified version is remembered (by
// object NUID and modification time), so that pushing the same bytes again
// stays fast; a replaced object is verified again.
type artifactVerifier struct {
	objects jetstream.ObjectStore
	logger  *slog.Logger
	ctx     context.Context // ends at stop
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	verified map[string]objectVersion // object name → the version found good
	running  map[objectVersion]*verification
	stopped  bool
}

// verification is one read-through of one object version.
type verification struct {
	done chan struct{}
	err  error
}

func newArtifactVerifier(objects jetstream.ObjectStore, logger *slog.Logger) *artifactVerifier {
	ctx, cancel := context.WithCancel(context.Background())
	return &artifactVerifier{objects: objects, logger: logger, ctx: ctx, cancel: cancel,
		verified: map[string]objectVersion{}, running: map[objectVersion]*verification{}}
}

// check returns nil when the object oi describes holds bytes with the hex
// SHA-256 digest. Errors: *clientsdk.Error 400 TypeArtifactCorrupt (wrong
// bytes), 400 TypeArtifactMissing (deleted meanwhile), 503 "Unavailable"
// when the read-through takes longer than verifyWait or ctx (it goes on, and
// a retry waits for it), or the object store's error.
func (v *artifactVerifier) check(ctx context.Context, oi *jetstream.ObjectInfo, digest string) error {
	ver := versionOf(oi)
	v.mu.Lock()
	if v.verified[ver.name] == ver {
		v.mu.Unlock()
		return nil
	}
	if v.stopped {
		v.mu.Unlock()
		return clientsdk.Errorf(503, "Unavailable", "the server is shutting down; try again")
	}
	run := v.running[ver]
	if run == nil {
		run = &verification{done: make(chan struct{})}
		v.running[ver] = run
		v.wg.Add(1)
		go v.run(ver, digest, run)
	}
	v.mu.Unlock()
	wait := time.NewTimer(verifyWait)
	defer wait.Stop()
	select {
	case <-run.done:
		return run.err
	case <-ctx.Done():
	case <-wait.C:
	}
	return clientsdk.Errorf(503, "Unavailable", "artifact %s (%d bytes) is still being verified; try again", ver.name, ver.size)
}

func (v *artifactVerifier) run(ver objectVersion, digest string, run *verification) {
	defer v.wg.Done()
	ctx, cancel := context.WithTimeout(v.ctx, verifyTimeout)
	defer cancel()
	start := time.Now()
	read, err := v.readThrough(ctx, ver.name, digest)
	v.mu.Lock()
	delete(v.running, ver)
	if err == nil {
		v.verified[ver.name] = read
	}
	v.mu.Unlock()
	if e, ok := clientsdk.AsError(err); ok && e.Type == clientsdk.TypeArtifactCorrupt {
		v.logger.Warn("artifact in the object store is corrupt; the pushing client uploads it again", "object", ver.name, "err", e.Message)
	} else {
		v.logger.Debug("artifact verified", "object", ver.name, "bytes", ver.size, "took", time.Since(start), "err", err)
	}
	run.err = err
	close(run.done)
}

// readThrough reads object name and returns the version read when its bytes
// have the hex SHA-256 digest.
func (v *artifactVerifier) readThrough(ctx context.Context, name, digest string) (objectVersion, error) {
	// A read that stops making progress is abandoned: after a server of
	// the cluster died, the read's consumer can stall for good, and the
	// pushes waiting for this verification would wait with it. The next
	// push's check starts a new one.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	progress := make(chan struct{}, 1)
	// The object's reader does not give up when ctx ends, and its Close
	// waits for a blocked Read: a stall, or the verifier stopping, ends ctx,
	// closes the reader in the background and abandons the read (below).
	var mu sync.Mutex
	var reader io.Closer
	go stallWatch(ctx, func() {
		cancel()
		mu.Lock()
		if reader != nil {
			go reader.Close()
		}
		mu.Unlock()
	}, progress, verifyStall)
	r, err := v.objects.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return objectVersion{}, clientsdk.Errorf(400, clientsdk.TypeArtifactMissing, "artifact %s was deleted while pushing; push again", name)
	}
	if err != nil && ctx.Err() != nil {
		return objectVersion{}, clientsdk.Errorf(503, "Unavailable", "reading artifact %s stalled for %s (the cluster is electing leaders?); try again", name, verifyStall)
	}
	if err != nil {
		return objectVersion{}, err
	}
	mu.Lock()
	reader = r
	mu.Unlock()
	stalled := clientsdk.Errorf(503, "Unavailable", "reading artifact %s stalled for %s (the cluster is electing leaders?); try again", name, verifyStall)
	if ctx.Err() != nil { // stalled or stopped between Get and here
		go r.Close()
		return objectVersion{}, stalled
	}
	info, err := r.Info()
	if err != nil {
		go r.Close()
		return objectVersion{}, err
	}
	type copied struct {
		n   int64
		err error
	}
	done := make(chan copied, 1)
	h := sha256.New()
	go func() {
		n, err := io.Copy(h, progressReader{r: r, progress: progress})
		done <- copied{n, err}
	}()
	var c copied
	select {
	case c = <-done:
		_ = r.Close()
	case <-ctx.Done():
		return objectVersion{}, stalled // the copy ends once the reader is closed
	}
	n, err := c.n, c.err
	if err != nil && ctx.Err() != nil {
		return objectVersion{}, stalled
	}
	got := hex.EncodeToString(h.Sum(nil))
	switch {
	case errors.Is(err, jetstream.ErrDigestMismatch):
		// The object's own digest (in its metadata) is not that of its bytes.
		return objectVersion{}, clientsdk.Errorf(400, clientsdk.TypeArtifactCorrupt,
			"artifact %s in the object store is corrupt: its bytes do not match its own metadata; upload it again (clientsdk.Push and `dartup push` do)", name)
	case err != nil:
		return objectVersion{}, err
	case got != digest || uint64(n) != info.Size:
		return objectVersion{}, clientsdk.Errorf(400, clientsdk.TypeArtifactCorrupt,
			"artifact %s in the object store holds %d bytes with sha256 %s…, not the bytes its name says; upload it again (clientsdk.Push and `dartup push` do)",
			name, n, got[:12])
	}
	return versionOf(info), nil
}

// verifyStall is how long a verification's read may go without a byte.
const verifyStall = 5 * time.Second

// progressReader signals progress on every read that returns bytes.
type progressReader struct {
	r        io.Reader
	progress chan<- struct{}
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		select {
		case p.progress <- struct{}{}:
		default:
		}
	}
	return n, err
}

// stallWatch calls stop once: when no progress has come for stall, or when
// ctx ends (a reader that ignores ctx must be stopped then too).
func stallWatch(ctx context.Context, stop func(), progress <-chan struct{}, stall time.Duration) {
	t := time.NewTimer(stall)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			stop()
			return
		case <-progress:
			t.Reset(stall)
		case <-t.C:
			stop()
			return
		}
	}
}

// forget drops what is known about object name (it was deleted).
func (v *artifactVerifier) forget(name string) {
	v.mu.Lock()
	delete(v.verified, name)
	v.mu.Unlock()
}

// stop ends the verifications in progress and waits for them.
func (v *artifactVerifier) stop() {
	v.mu.Lock()
	v.stopped = true // no verification starts after this
	v.mu.Unlock()
	v.cancel()
	v.wg.Wait()
}
