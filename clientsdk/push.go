package clientsdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ArtifactChunkSize is the object-store chunk size used by Push.
const ArtifactChunkSize = 1 << 20

// MaxArtifactSize bounds a pushed file (2 GiB).
const MaxArtifactSize = 2 << 30

// Progress is called while an artifact uploads with the bytes sent so far and the total.
type Progress func(sent, total int64)

// Push uploads file (unless spec.Runtime is RuntimeCommand, where file must be
// "") into the artifacts object store under "sha256/HEX" — skipping the upload
// when that exact object is already stored — then declares spec through
// dartup.api.push. It fills spec.Artifact itself. When spec.Runtime is empty,
// it is detected from the file. The spec's bounds are checked before anything
// is uploaded. When the server finds the stored object missing, of another
// size or with other bytes than its digest says (TypeArtifactMissing,
// TypeArtifactMismatch, TypeArtifactCorrupt), the file is uploaded again,
// replacing the object, and the push tried once more. It returns the stored
// spec (with its revision). Errors: *Error 400 for an invalid spec or file,
// 413 for a file over MaxArtifactSize, transport errors.
func (c *Client) Push(ctx context.Context, spec AppSpec, file string, progress Progress) (*AppSpec, error) {
	if err := ValidateName(spec.Name); err != nil {
		return nil, err
	}
	defaulted := spec.WithDefaults()
	if err := defaulted.ValidateBounds(); err != nil {
		return nil, err
	}
	var art *LocalArtifact
	if spec.Runtime == RuntimeCommand {
		if file != "" {
			return nil, Errorf(400, TypeInvalidSpec, "runtime command takes no file; put the command line after --")
		}
	} else {
		a, err := PrepareArtifact(spec, file)
		if err != nil {
			return nil, err
		}
		defer a.Close()
		art = a
	}
	return c.PushPrepared(ctx, spec, art, progress)
}

// LocalArtifact is a file on this machine made ready to push: hashed, its
// runtime known, a folder packed into a bundle. Close removes what
// PrepareArtifact made.
type LocalArtifact struct {
	// Ref is the artifact as a spec refers to it (file name: the file's,
	// or the folder's with a trailing /).
	Ref ArtifactRef
	// Runtime is the runtime given in the spec, or detected (for a folder,
	// from its entry).
	Runtime Runtime
	path    string // the file to upload (a folder's packed bundle)
	cleanup func()
}

// Close removes a packed bundle; the artifact is no use after it.
func (a *LocalArtifact) Close() {
	if a != nil && a.cleanup != nil {
		a.cleanup()
	}
}

// PrepareArtifact hashes file, or packs folder file with spec.Bundle's
// entry and hashes the bundle, checking it as Push does, and detects the
// runtime unless spec.Runtime gives it. Nothing is uploaded: Client.Upload
// and Client.PushPrepared do that. Errors: *Error 400 for a missing, empty
// or unknown file, 413 over MaxArtifactSize.
func PrepareArtifact(spec AppSpec, file string) (*LocalArtifact, error) {
	st, err := os.Stat(file)
	if spec.Bundle != nil && (err != nil || !st.IsDir()) {
		return nil, Errorf(400, "InvalidFile", "--entry %s goes with a folder to push, and %s is not one", spec.Bundle.Entry, file)
	}
	if err != nil || !st.IsDir() {
		ref, rt, err := hashArtifact(spec.Runtime, file)
		if err != nil {
			return nil, err
		}
		return &LocalArtifact{Ref: *ref, Runtime: rt, path: file}, nil
	}
	tarball, rt, cleanup, err := packBundle(file, spec)
	if err != nil {
		return nil, err
	}
	ref, _, err := hashArtifact(runtimeBundle, tarball)
	if err != nil {
		cleanup()
		return nil, err
	}
	ref.FileName = filepath.Base(filepath.Clean(file)) + "/" // the folder's name, not the temporary file's
	return &LocalArtifact{Ref: *ref, Runtime: rt, path: tarball, cleanup: cleanup}, nil
}

// PushPrepared declares spec with art as its artifact (nil for
// RuntimeCommand), uploading art first unless the store holds it; see Push.
func (c *Client) PushPrepared(ctx context.Context, spec AppSpec, art *LocalArtifact, progress Progress) (*AppSpec, error) {
	if art != nil {
		if err := c.Upload(ctx, art, progress, false); err != nil {
			return nil, err
		}
		ref := art.Ref
		spec.Artifact, spec.Runtime = &ref, art.Runtime
	}
	if spec.PushedBy == "" {
		spec.PushedBy = c.pushedBy()
	}
	var out AppSpec
	err := c.call(ctx, VerbPush, spec, &out)
	if e, ok := AsError(err); ok && art != nil && (e.Type == TypeArtifactMissing || e.Type == TypeArtifactMismatch || e.Type == TypeArtifactCorrupt) {
		// Another app's removal deleted these shared bytes between the
		// upload check and the push, or the stored object does not hold
		// them (written by something else): upload them again, once.
		if err = c.Upload(ctx, art, progress, true); err != nil {
			return nil, err
		}
		err = c.call(ctx, VerbPush, spec, &out)
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// runtimeBundle marks, inside Push, an upload of a folder's bundle: no
// runtime is detected from the gzip'd tar itself.
const runtimeBundle Runtime = "bundle"

// packBundle writes folder dir as a bundle into a temporary file and
// returns it, the runtime of the spec's entry (detected unless given) and
// a cleanup.
func packBundle(dir string, spec AppSpec) (string, Runtime, func(), error) {
	if spec.Bundle == nil {
		return "", "", nil, Errorf(400, "InvalidFile", "%s is a folder: give the program to run inside it with --entry (e.g. --entry bin/server)", dir)
	}
	if err := ValidateEntry(spec.Bundle.Entry); err != nil {
		return "", "", nil, Errorf(400, TypeInvalidSpec, "%v", err)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real // a link to the folder: pack what it points to
	}
	entry := filepath.Join(dir, filepath.FromSlash(spec.Bundle.Entry))
	st, err := os.Stat(entry)
	if err != nil || !st.Mode().IsRegular() {
		return "", "", nil, Errorf(400, "FileNotFound", "the entry %s is not a file in %s", spec.Bundle.Entry, dir)
	}
	rt := spec.Runtime
	if rt == "" {
		if rt, err = DetectRuntime(entry); err != nil {
			return "", "", nil, Errorf(400, "UnknownRuntime", "%v", err)
		}
	}
	f, err := os.CreateTemp("", "dartup-bundle-*.tar.gz")
	if err != nil {
		return "", "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	err = WriteBundle(dir, path.Clean(spec.Bundle.Entry), f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", "", nil, Errorf(400, "InvalidFile", "pack %s: %v", dir, err)
	}
	return f.Name(), rt, cleanup, nil
}

// hashArtifact checks file as an artifact of runtime rt (detected when
// empty) and returns its reference and runtime.
func hashArtifact(rt Runtime, file string) (*ArtifactRef, Runtime, error) {
	if file == "" {
		return nil, "", Errorf(400, TypeInvalidSpec, "no file to push; give FILE, or --runtime command -- CMD")
	}
	st, err := os.Stat(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, "", Errorf(400, "FileNotFound", "%s does not exist", file)
	case err != nil:
		return nil, "", err
	case st.IsDir():
		return nil, "", Errorf(400, "InvalidFile", "%s is a directory; push a compiled executable, AOT snapshot or .dill, or the folder with --entry PROGRAM", file)
	case !st.Mode().IsRegular():
		return nil, "", Errorf(400, "InvalidFile", "%s is not a regular file (%s); push a compiled executable, AOT snapshot, .dill or script", file, st.Mode().Type())
	case st.Size() == 0:
		return nil, "", Errorf(400, "InvalidFile", "%s is empty (0 bytes)", file)
	case st.Size() > MaxArtifactSize:
		return nil, "", Errorf(413, TypeTooLarge, "%s is %d bytes; the limit is %d", file, st.Size(), int64(MaxArtifactSize))
	}
	if rt == "" {
		if rt, err = DetectRuntime(file); err != nil {
			return nil, "", Errorf(400, "UnknownRuntime", "%v", err)
		}
	} else if rt == RuntimeExe && st.Mode()&0o111 == 0 {
		if d, err := DetectRuntime(file); err != nil || d != RuntimeExe {
			return nil, "", Errorf(400, "InvalidFile", "%s is not executable and not an ELF executable", file)
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, "", fmt.Errorf("read %s: %w", file, err)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	return &ArtifactRef{Object: ArtifactObjectName(digest), SHA256: digest, Size: st.Size(), FileName: filepath.Base(file)}, rt, nil
}

// Upload stores art in the artifacts object store unless an object of its
// name, size and digest is there already (or force is set).
func (c *Client) Upload(ctx context.Context, art *LocalArtifact, progress Progress, force bool) error {
	ref := art.Ref
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	var obj jetstream.ObjectStore
	err = retryTransient(ctx, 10*time.Second, func(ctx context.Context) (err error) {
		obj, err = js.ObjectStore(ctx, ArtifactsBucket)
		return err
	})
	if err != nil {
		return fmt.Errorf("open the artifact store %s (is this a dartup server?): %w", ArtifactsBucket, err)
	}
	if oi, err := obj.GetInfo(ctx, ref.Object); !force && err == nil && int64(oi.Size) == ref.Size && oi.Headers.Get(HeaderArtifactSHA256) == ref.SHA256 {
		if progress != nil {
			progress(ref.Size, ref.Size)
		}
		return nil // already stored
	}
	f, err := os.Open(art.path)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := nats.Header{}
	hdr.Set(HeaderArtifactSHA256, ref.SHA256)
	// The upload is retried whole on transient errors; Put replaces a partial
	// object. It has no deadline of its own: a large file on a slow link takes
	// as long as it takes (ctx still ends it).
	err = retryTransient(ctx, 0, func(ctx context.Context) error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		var r io.Reader = f
		if progress != nil {
			r = &progressReader{r: f, total: ref.Size, fn: progress}
		}
		_, err := obj.Put(ctx, jetstream.ObjectMeta{
			Name:        ref.Object,
			Description: "dartup artifact " + ref.FileName,
			Headers:     hdr,
			Opts:        &jetstream.ObjectMetaOptions{ChunkSize: ArtifactChunkSize},
		}, r)
		return err
	})
	if err != nil {
		if full := c.diskFull(ctx, err, ref.Size, "the upload of "+ref.FileName); full != nil {
			return full
		}
		return fmt.Errorf("upload %s: %w", art.path, err)
	}
	return nil
}

// diskFull returns the 507 error for a failed upload of n bytes when the
// server's store or disk is full (JetStream's refusal says so; a timeout
// may mean it, which the server's info tells), or nil.
func (c *Client) diskFull(ctx context.Context, err error, n int64, what string) error {
	full := IsStoreFull(err)
	if !full && !transient(err) && !strings.Contains(err.Error(), "timeout") {
		return nil
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	si, ierr := c.Info(ictx)
	if ierr != nil || si.Disk == nil || !(full || si.Disk.Full(n)) {
		return nil
	}
	return si.Disk.DiskFullError(si.ServerName, what)
}

type progressReader struct {
	r     io.Reader
	sent  int64
	total int64
	fn    Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.sent += int64(n)
	p.fn(p.sent, p.total)
	return n, err
}
