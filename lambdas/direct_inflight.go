package lambdas

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/proc"
)

// A direct worker's in-flight file (clientsdk.EnvLambdaInflight): made for
// it, read when it exits (the records it held, the request it died in),
// removed with it.

// directCrashed reports a direct worker that exited unasked while free in
// dartup's view: a request it took within its first millisecond died with
// it (dartup had not heard of it). Its in-flight file names the request
// (run), which gets 502; without one (a worker that does not write it)
// the caller's own timeout answers it. Either way the exit and the stderr
// tail are seen (a crashed event, a warning).
func (f *function) directCrashed(w *worker, ex proc.Exit, run *clientsdk.DoneRecord) {
	w.proc.WaitOutput(20 * time.Millisecond)
	msg := ex.String()
	if t := w.tail.String(); t != "" {
		msg += "; stderr: " + t
	}
	inv := f.runningInv(run)
	if inv == nil {
		f.log.Warn("direct lambda worker exited unasked; a request it had just taken, if any, is answered by its caller's timeout", "worker", w.id, "exit", msg)
		f.m.event(f.name, clientsdk.EventCrashed, w.index, "worker %s %s while taking requests directly", w.id, msg)
		return
	}
	inv.fail(clientsdk.Errorf(502, TypeExit, "the worker (pid %d) exited mid-invocation: %s", w.proc.PID(), msg))
	f.m.event(f.name, clientsdk.EventCrashed, w.index, "worker %s %s during request %s", w.id, msg, inv.id)
}

// readInflight reads the in-flight file of w, a direct worker that
// exited: it records the requests the worker answered whose records
// dartup did not get — held, or in a notice that died in the worker's
// connection; those of the last two batches it got are skipped — (they
// are counted, their spans end), and returns the line of the request it
// was running that dartup had not heard of, or nil.
func (f *function) readInflight(w *worker) *clientsdk.DoneRecord {
	if w.native == nil || w.native.inflight == "" {
		return nil
	}
	b, err := readRegular(w.native.inflight, clientsdk.MaxInflightFile)
	if err != nil {
		f.log.Warn("a direct worker's in-flight file cannot be read; ignored", "worker", w.id, "err", err)
		return nil
	}
	held, run, err := clientsdk.ParseInflight(b)
	if err != nil {
		f.log.Warn("a direct worker's in-flight file cannot be read to its end; the rest ignored", "worker", w.id, "err", err)
	}
	now := time.Now()
	for _, rec := range held {
		if err := f.checkDirect(rec); err != nil {
			f.log.Warn("a record in a direct worker's in-flight file is refused; the rest ignored", "worker", w.id, "err", err)
			return nil
		}
		f.mu.Lock()
		if w.inBatchesLocked(rec) {
			f.mu.Unlock()
			continue
		}
		f.completeDirectLocked(w, rec, now)
	}
	return run
}

// directKey names a request a direct worker answered: its id and its
// caller's reply subject (an async retry has its first attempt's id).
type directKey struct{ id, reply string }

// noteBatchLocked remembers the requests of recs, w's latest batched done
// notice: w's in-flight file lists those of the last two it sent.
func (w *worker) noteBatchLocked(recs []clientsdk.DoneRecord) {
	next := w.batches[1][:0]
	for _, r := range recs {
		next = append(next, directKey{r.RequestID, r.Reply})
	}
	w.batches[0], w.batches[1] = next, w.batches[0]
}

// inBatchesLocked reports whether rec was in one of the last two batched
// done notices dartup got from w.
func (w *worker) inBatchesLocked(rec clientsdk.DoneRecord) bool {
	k := directKey{rec.RequestID, rec.Reply}
	return slices.Contains(w.batches[0], k) || slices.Contains(w.batches[1], k)
}

// runningInv is the invocation of run, the request a direct worker died
// in before dartup heard of it, or nil.
func (f *function) runningInv(run *clientsdk.DoneRecord) *invocation {
	if run == nil {
		return nil
	}
	rec := *run
	if _, ok := clientsdk.ParseTraceparent(rec.TraceParent); !ok {
		rec.TraceParent = ""
	}
	if err := f.checkDirect(rec); err != nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.directInvLocked(rec, time.Now())
}

// doneWithLocked notes that w is done with inv (answered, or failed by
// dartup): a second answer to inv's id is refused (finish).
func (w *worker) doneWithLocked(inv *invocation) { w.doneWithIDLocked(inv.id) }

// doneWithIDLocked is doneWithLocked for the request id.
func (w *worker) doneWithIDLocked(id string) { w.lastDone = id }

// removeInflight removes w's in-flight file and its directory, if any
// (w is gone).
func (w *worker) removeInflight() {
	if w.native != nil && w.native.inflight != "" {
		_ = os.RemoveAll(filepath.Dir(w.native.inflight))
	}
}

// newInflightFile makes a direct worker's in-flight file, writable by the
// user the worker runs as, in a directory of dartup's that it may not
// write (so that it cannot put a link to another file in its place for
// dartup to read); "" when it cannot (the worker goes without).
func newInflightFile(f *function, id string) string {
	dir, err := os.MkdirTemp("", "dartup-inflight-"+id[:8]+"-")
	if err != nil {
		return ""
	}
	path := filepath.Join(dir, "request")
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_ = fh.Close()
		err = os.Chmod(dir, 0o711)
	}
	if c := f.cmd.Credential; err == nil && c != nil {
		err = os.Chown(path, int(c.UID), int(c.GID))
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return ""
	}
	return path
}

// readRegular reads at most limit bytes of the file at path, which must be
// a regular file: opened without blocking (a worker running as dartup's
// own user could put a FIFO in its in-flight file's place, whose open
// would wait for a writer forever).
func readRegular(path string, limit int64) ([]byte, error) {
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if st, err := fh.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return io.ReadAll(io.LimitReader(fh, limit))
}
