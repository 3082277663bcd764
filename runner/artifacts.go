package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrArtifact is wrapped by every artifact fetch failure (missing, corrupt).
var ErrArtifact = errors.New("artifact")

// cache keeps fetched artifacts on local disk by SHA-256, so that restarts and
// instances of the same app share one copy. Files are streamed from the object
// store to disk (never held whole in memory) and their digest is verified
// before they are used. A cached file is hashed again before its first use by
// this process and whenever it changed on disk since (size, times, inode); a
// file found corrupt is deleted and fetched again.
type cache struct {
	dir     string
	objects jetstream.ObjectStore
	logger  *slog.Logger
	mu      sync.Mutex
	inMu    map[string]*sync.Mutex
	// verified holds, per digest, the stamp of the cached file when its
	// bytes were last found to have that digest.
	verified map[string]fileStamp
}

func newCache(dir string, objects jetstream.ObjectStore, logger *slog.Logger) (*cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create artifact cache: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &cache{dir: dir, objects: objects, logger: logger, inMu: map[string]*sync.Mutex{}, verified: map[string]fileStamp{}}, nil
}

// intact reports whether the cached file final (with info st) holds ref's
// bytes: known from an earlier check of the same unchanged file, or hashed now.
func (c *cache) intact(final string, st os.FileInfo, ref *clientsdk.ArtifactRef) bool {
	if st.Size() != ref.Size {
		return false
	}
	stamp := stampOf(st)
	c.mu.Lock()
	known := c.verified[ref.SHA256] == stamp
	c.mu.Unlock()
	if known {
		return true
	}
	f, err := os.Open(final)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != ref.SHA256 {
		return false
	}
	c.remember(ref.SHA256, final)
	return true
}

// remember records the stamp of the cached file path, just verified.
func (c *cache) remember(digest, path string) {
	st, err := os.Stat(path)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.verified[digest] = stampOf(st)
	c.mu.Unlock()
}

func (c *cache) lockFor(digest string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.inMu[digest]
	if !ok {
		m = &sync.Mutex{}
		c.inMu[digest] = m
	}
	return m
}

// fetchAttempts bounds the fetches of one artifact. In a cluster, a read
// right after a push may reach a replica that has not applied it yet (object
// reads may be served by any replica), so "missing" and "corrupt" are retried
// with a growing delay before they count.
const fetchAttempts = 8

// path returns the local path of ref, fetching and verifying it when it is
// not cached yet, retrying as fetchAttempts says. Errors wrap ErrArtifact and
// say what is wrong.
func (c *cache) path(ctx context.Context, ref *clientsdk.ArtifactRef) (string, error) {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		p, err := c.fetch(ctx, ref)
		if err == nil || attempt == fetchAttempts || ctx.Err() != nil {
			return p, err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// fetch makes one attempt at path.
func (c *cache) fetch(ctx context.Context, ref *clientsdk.ArtifactRef) (string, error) {
	if len(ref.SHA256) != 64 {
		return "", fmt.Errorf("%w: bad digest %q", ErrArtifact, ref.SHA256)
	}
	final := filepath.Join(c.dir, ref.SHA256)
	m := c.lockFor(ref.SHA256)
	m.Lock()
	defer m.Unlock()
	if st, err := os.Stat(final); err == nil {
		if c.intact(final, st, ref) {
			return final, nil
		}
		c.logger.Warn("cached artifact is corrupt; fetching it again", "object", ref.Object, "path", final)
		if err := os.Remove(final); err != nil {
			return "", fmt.Errorf("%w %s: remove the corrupt cached copy: %w", ErrArtifact, ref.Object, err)
		}
	}
	r, err := c.objects.Get(ctx, ref.Object)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return "", fmt.Errorf("%w %s is missing from the object store; push the app again", ErrArtifact, ref.Object)
	}
	if err != nil {
		return "", fmt.Errorf("%w %s: fetch: %w", ErrArtifact, ref.Object, err)
	}
	tmp, err := os.CreateTemp(c.dir, ".fetch-*")
	if err != nil {
		go r.Close()
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := copyUnstalled(io.MultiWriter(tmp, h), r, fetchStall)
	if err != nil {
		tmp.Close()
		return "", fmt.Errorf("%w %s: fetch: %w", ErrArtifact, ref.Object, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ref.SHA256 || n != ref.Size {
		return "", fmt.Errorf("%w %s is corrupt: got %d bytes with sha256 %s, want %d bytes with %s; push the app again",
			ErrArtifact, ref.Object, n, got[:12], ref.Size, ref.SHA256[:12])
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", err
	}
	c.remember(ref.SHA256, final)
	return final, nil
}

// fetchStall is how long a fetch may go without a byte before it is given
// up (and retried): when the object is replaced while it is read (pushes of
// the same new file racing), the chunks being read are purged, and the
// object store's reader would wait for them until the fetch's deadline,
// five minutes, with every instance of the app waiting behind it.
const fetchStall = 15 * time.Second

// copyUnstalled copies r into w and closes r. When no byte has come for
// stall it gives up: r's Read may block until the deadline of the Get, and
// so would its Close, so both are left to finish in the background, and the
// abandoned copy writes nothing more into w.
func copyUnstalled(w io.Writer, r io.ReadCloser, stall time.Duration) (int64, error) {
	var mu sync.Mutex
	abandoned := false
	progress := make(chan struct{}, 1)
	guarded := writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			return 0, errAbandoned
		}
		select {
		case progress <- struct{}{}:
		default:
		}
		return w.Write(b)
	})
	type copied struct {
		n   int64
		err error
	}
	done := make(chan copied, 1)
	go func() {
		n, err := io.Copy(guarded, r)
		done <- copied{n, err}
	}()
	t := time.NewTimer(stall)
	defer t.Stop()
	for {
		select {
		case c := <-done:
			if err := r.Close(); c.err == nil {
				c.err = err
			}
			return c.n, c.err
		case <-progress:
			t.Reset(stall)
		case <-t.C:
			mu.Lock()
			abandoned = true
			mu.Unlock()
			go r.Close()
			return 0, fmt.Errorf("no data for %s (the object was replaced while it was read?)", stall)
		}
	}
}

var errAbandoned = errors.New("copy abandoned")

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// prune deletes cached artifacts whose digest no spec in keep uses, and fetch
// leftovers older than an hour (a crash mid-fetch). A running worker keeps its
// deleted file open; a later restart fetches the artifact again if needed.
func (c *cache) prune(keep map[string]bool) (removed int) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return 0
	}
	for _, e := range ents {
		name := e.Name()
		info, err := e.Info()
		if err != nil || e.IsDir() {
			continue
		}
		stale := strings.HasPrefix(name, ".fetch-") && time.Since(info.ModTime()) > time.Hour
		unused := len(name) == 64 && !keep[name]
		if stale || unused {
			m := c.lockFor(name)
			m.Lock()
			if os.Remove(filepath.Join(c.dir, name)) == nil {
				removed++
			}
			c.mu.Lock()
			delete(c.verified, name)
			c.mu.Unlock()
			m.Unlock()
		}
	}
	return removed
}
