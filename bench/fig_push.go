package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// pushSize is the size of the pushed artifact.
const pushSize = 50 << 20

// makeArtifact writes the daemon worker padded with random bytes to pushSize
// (an ELF runs fine with trailing data), so that the push ends in a running
// process. Each call changes the last 8 bytes: every push is a new digest.
func makeArtifact(worker, path string, seq uint64) error {
	if _, err := os.Stat(path); err != nil {
		src, err := os.ReadFile(worker)
		if err != nil {
			return err
		}
		if len(src) > pushSize {
			return fmt.Errorf("worker is larger than %d bytes", pushSize)
		}
		pad := make([]byte, pushSize-len(src))
		_, _ = rand.Read(pad)
		if err := os.WriteFile(path, append(src, pad...), 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seq)
	if _, err := f.WriteAt(b[:], pushSize-8); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// figPush: a 50 MB artifact push → running vs a raw object-store put + get (figure 5).
func (h *harness) figPush(ctx context.Context) []*Figure {
	f := &Figure{ID: "push", Num: 5, Title: "push of a 50 MB artifact → running"}
	fail := func(err error) []*Figure {
		f.notMeasured(err.Error())
		f.add(unmeasured("dartup push → running", "dartup", err.Error()))
		return []*Figure{f}
	}
	s, err := startServe(ctx, h.bins.dartup, filepath.Join(h.tmp, "push"), filepath.Join(h.logDir, "serve-push.log"))
	if err != nil {
		return fail(err)
	}
	defer s.stop()
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(s.natsURL))
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	js, err := jetstream.New(c.Conn())
	if err != nil {
		return fail(err)
	}
	raw, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "BENCH_RAW", Storage: jetstream.FileStorage})
	if err != nil {
		return fail(err)
	}
	art := filepath.Join(h.tmp, "artifact-50mb")
	pidDir := filepath.Join(h.tmp, "push-pids")
	_ = os.MkdirAll(pidDir, 0o755)
	_ = os.Chmod(pidDir, 0o1777) // the apps (users of their own, as root) write here
	n := h.n(6, 2)
	var pushes, raws []time.Duration
	for i := 0; i < n && ctx.Err() == nil; i++ {
		// raw object store: put the bytes, get them back to a file.
		if err := makeArtifact(h.bins.daemon, art, uint64(2*i)); err != nil {
			return fail(err)
		}
		t0 := time.Now()
		if err := rawPutGet(ctx, raw, art, filepath.Join(h.tmp, "raw-copy")); err != nil {
			return fail(err)
		}
		raws = append(raws, time.Since(t0))
		_ = raw.Delete(ctx, "artifact")

		// dartup: push (digest, upload, declare) → the runner fetches, verifies, spawns.
		if err := makeArtifact(h.bins.daemon, art, uint64(2*i+1)); err != nil {
			return fail(err)
		}
		name := fmt.Sprintf("push%d", i)
		pidfile := filepath.Join(pidDir, name+".pid")
		spec := clientsdk.AppSpec{Name: name, Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeExe,
			Env: map[string]string{"WORKER_PIDFILE": pidfile}}
		t0 = time.Now()
		if _, err := c.Push(ctx, spec, art, nil); err != nil {
			return fail(fmt.Errorf("push: %w", err))
		}
		st, err := waitNewPid(ctx, pidfile, 0, 60*time.Second)
		if err != nil {
			return fail(err)
		}
		pushes = append(pushes, st.started.Sub(t0))
		_ = c.Remove(ctx, name)
	}
	if err := h.syncRows(ctx, f, c); err != nil {
		return fail(err)
	}
	b := f.add(latencyRow("raw JetStream object store on the same server: put + get to a file", "baseline", "ms", raws))
	b.Short = "raw put + get"
	r := f.add(latencyRow("dartup push (SDK) → worker process started", "dartup", "ms", pushes))
	ratio(r, b)
	r.Note = fmt.Sprintf("%.0f MB/s end to end", float64(pushSize)/(1<<20)/(r.Median/1000))
	b.Note = fmt.Sprintf("%.0f MB/s", float64(pushSize)/(1<<20)/(b.Median/1000))
	f.Note = "The artifact is the benchmark daemon padded with random bytes to 50 MiB (a new digest each time). dartup's time runs from the SDK's Push call to the moment the new worker process recorded its start: it includes hashing the file on the client, the upload in 1 MiB chunks, the push verb, the runner's fetch into its cache with digest check, and the spawn. The baseline puts the same bytes into an object store bucket of the same server (file storage, the same 1 MiB chunks) and reads them back into a file."
	return []*Figure{f}
}

func rawPutGet(ctx context.Context, obj jetstream.ObjectStore, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := obj.Put(ctx, jetstream.ObjectMeta{Name: "artifact", Opts: &jetstream.ObjectMetaOptions{ChunkSize: clientsdk.ArtifactChunkSize}}, in); err != nil {
		return err
	}
	r, err := obj.Get(ctx, "artifact")
	if err != nil {
		return err
	}
	defer r.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncRows measures what syncing desired state to disk costs a push: the
// same declare-only push (a lambda: nothing uploaded, nothing started) on
// this server (default --sync auto: every write synced) and on a second one
// with --sync interval, alternating.
func (h *harness) syncRows(ctx context.Context, f *Figure, synced *clientsdk.Client) error {
	s, err := startServe(ctx, h.bins.dartup, filepath.Join(h.tmp, "push-nosync"), filepath.Join(h.logDir, "serve-push-nosync.log"), "--sync", "interval")
	if err != nil {
		return err
	}
	defer s.stop()
	unsynced, err := clientsdk.Connect(ctx, clientsdk.WithURL(s.natsURL))
	if err != nil {
		return err
	}
	defer unsynced.Close()
	spec := clientsdk.AppSpec{Name: "declare", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: []string{"/bin/true"}}
	var with, without []time.Duration
	for i := 0; i < h.n(60, 10) && ctx.Err() == nil; i++ {
		for _, x := range []struct {
			c   *clientsdk.Client
			out *[]time.Duration
		}{{unsynced, &without}, {synced, &with}} {
			t0 := time.Now()
			if _, err := x.c.Push(ctx, spec, "", nil); err != nil {
				return fmt.Errorf("declare-only push: %w", err)
			}
			*x.out = append(*x.out, time.Since(t0))
		}
	}
	b := f.add(latencyRow("declare-only push (a lambda: nothing uploaded or started), `serve --sync interval`", "baseline", "ms", without))
	b.Short = "push, --sync interval"
	r := f.add(latencyRow("the same push, `serve` default (desired state synced to disk before the answer)", "dartup", "ms", with))
	ratio(r, b)
	return nil
}
