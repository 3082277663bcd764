package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/bytesize"
	"github.com/nats-io/nats-server/v2/server"
)

// A full disk. JetStream's own limit (--max-store, sized by planStorage)
// refuses new data cleanly ("insufficient resources") while deletes still
// work; but something else may fill the disk first (apps' files, the
// runner's cache, other programs). Then a stream's file store fails a write
// ("Critical write error: … no space left on device") and refuses every write
// after it, even once space is back, until it is loaded again. The disk
// guard notices that error in the server's log, releases the space it held
// in reserve (DATA/reserve) so that removes can write their markers, loads
// JetStream again with a store limit that fits the space left, makes the
// reserve again once the disk has room, and raises the limit back as space
// returns.

// reserveName is the file that holds the disk guard's reserve.
const reserveName = "reserve"

// diskGuard watches the store's writes and the data disk.
type diskGuard struct {
	b           *Broker
	reservePath string
	reserveSize int64
	// writeErr is the store's write failure while it lasts.
	writeErr atomic.Pointer[string]
	// recovered counts the times JetStream was loaded again after one.
	recovered atomic.Int64
	lastWarn  time.Time
	raisedAt  time.Time
}

// raiseEvery bounds how often the store limit is raised.
const raiseEvery = 10 * time.Second

// newDiskGuard sizes the reserve from the disk (1/64 of it, 1 to 16 MiB)
// and makes it when the disk has room for four of it.
func newDiskGuard(b *Broker) *diskGuard {
	_, total := diskSpace(b.cfg.DataDir)
	g := &diskGuard{b: b, reservePath: filepath.Join(b.cfg.DataDir, reserveName),
		reserveSize: min(max(total/64, 1<<20), 16<<20)}
	g.makeReserve()
	return g
}

// makeReserve writes the reserve file when it is missing and the disk has
// room for four times its size.
func (g *diskGuard) makeReserve() {
	if st, err := os.Stat(g.reservePath); err == nil && st.Size() >= g.reserveSize {
		return
	}
	if avail, _ := diskSpace(g.b.cfg.DataDir); avail >= 0 && avail < 4*g.reserveSize {
		return
	}
	if err := writeReserve(g.reservePath, g.reserveSize); err != nil {
		g.b.logger.Warn("cannot make the disk reserve", "file", g.reservePath, "err", err)
		_ = os.Remove(g.reservePath)
	}
}

// writeReserve makes path a file of size bytes allocated on disk (not a
// sparse file): with fallocate where the file system has it (no data
// written), else by writing zeros.
func writeReserve(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if allocate(f, size) != nil {
		buf := make([]byte, 1<<20)
		for n := int64(0); n < size && err == nil; n += int64(len(buf)) {
			_, err = f.Write(buf[:min(int64(len(buf)), size-n)])
		}
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// noteServerError is given each error line of the embedded server: a
// stream's failed write starts the recovery.
func (g *diskGuard) noteServerError(msg string) {
	if strings.Contains(strings.ToLower(msg), "critical write error") {
		g.writeErr.CompareAndSwap(nil, &msg)
	}
}

// WriteError returns the store's write failure while it lasts, or "".
func (g *diskGuard) WriteError() string {
	if p := g.writeErr.Load(); p != nil {
		return *p
	}
	return ""
}

// usage reports the disk, the store and the reserve.
func (g *diskGuard) usage() *clientsdk.DiskUsage {
	free, total := diskSpace(g.b.cfg.DataDir)
	u := &clientsdk.DiskUsage{Free: free, Total: total, WriteError: g.WriteError()}
	if v, err := g.b.ns.Varz(nil); err == nil && v.JetStream.Stats != nil {
		u.StoreUsed = int64(v.JetStream.Stats.Store)
	}
	if c := g.b.ns.JetStreamConfig(); c != nil {
		u.StoreMax = c.MaxStore
	}
	if st, err := os.Stat(g.reservePath); err == nil {
		u.Reserve = st.Size()
	}
	return u
}

// asDiskFull turns a failed store write into the 507 error that says how
// full the disk is; other errors are returned as they are.
func (g *diskGuard) asDiskFull(err error, what string) error {
	if err == nil {
		return nil
	}
	if _, ok := clientsdk.AsError(err); ok {
		return err
	}
	stuck := g.WriteError() != "" && (errors.Is(err, context.DeadlineExceeded) || clientsdk.IsTransient(err))
	if !clientsdk.IsStoreFull(err) && !stuck {
		return err
	}
	return g.usage().DiskFullError(g.b.cfg.ServerName, what)
}

// diskCheckInterval is how often the guard looks at the store and the disk.
const diskCheckInterval = 2 * time.Second

// run recovers from write failures and keeps the reserve until ctx ends.
func (g *diskGuard) run(ctx context.Context) {
	t := time.NewTicker(diskCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if g.WriteError() == "" {
			g.makeReserve()
			g.raiseLimit()
			continue
		}
		g.recover()
	}
}

// recover releases the reserve and, once the disk has minRecoverFree,
// loads JetStream again with a store limit that fits the space left: JetStream's own limit then refuses what
// does not fit ("insufficient resources", which it recovers from) before
// the disk does (a write error, which it does not).
func (g *diskGuard) recover() {
	if g.b.ns.JetStreamIsClustered() {
		// A clustered JetStream cannot be reloaded on its own: its peers
		// hold the data; restarting this server (after freeing space)
		// brings it back. Say so; /healthz and pushes report it meanwhile.
		if time.Since(g.lastWarn) > 30*time.Second {
			g.lastWarn = time.Now()
			g.b.logger.Error("this server's JetStream cannot write (a full disk?); free space and restart this server: the others hold the data",
				"data", g.b.cfg.DataDir, "err", g.WriteError())
		}
		return
	}
	if err := os.Remove(g.reservePath); err == nil {
		g.b.logger.Warn("disk full: released the disk reserve so that removes can run; free space on the data disk",
			"reserve", bytesize.Format(g.reserveSize), "data", g.b.cfg.DataDir)
	}
	avail, _ := diskSpace(g.b.cfg.DataDir)
	if avail >= 0 && avail < minRecoverFree {
		if time.Since(g.lastWarn) > 30*time.Second {
			g.lastWarn = time.Now()
			g.b.logger.Error("disk full: JetStream cannot write until space is freed on the data disk",
				"data", g.b.cfg.DataDir, "err", g.WriteError())
		}
		return
	}
	if err := g.reloadJetStream(g.fittingLimit(avail)); err != nil {
		g.b.logger.Error("JetStream could not be loaded again after its write failure", "err", err)
		return
	}
	g.writeErr.Store(nil)
	g.recovered.Add(1)
}

// minRecoverFree is the free space below which JetStream is not loaded
// again: its first writes would fail at once.
const minRecoverFree = 512 << 10

// fittingLimit is the store limit that fits the disk now: what the store
// holds by JetStream's count (which its limit is checked against) plus its
// share of the free space, at most the limit planned at start.
func (g *diskGuard) fittingLimit(avail int64) int64 {
	if avail < 0 {
		return g.b.cfg.MaxStore
	}
	return min(g.b.cfg.MaxStore, g.usage().StoreUsed+fittingRoom(avail, g.b.cfg.LocalRunner))
}

// fittingRoom is how much more the store may hold on a disk with avail
// free: its share of the free space, at least a MiB where the disk has it
// (heartbeats, status writes and removes must go on at a lowered limit),
// and never so much that its own writes take the disk below
// minRecoverFree, where /healthz says the disk is full (the store would
// write on, and /healthz answer 503 until space is freed by hand).
func fittingRoom(avail int64, localRunner bool) int64 {
	return min(max(storeShare(avail, localRunner), 1<<20), max(avail-minRecoverFree, 0))
}

// raiseLimit loads JetStream again with a higher store limit once space
// has come back after a full disk lowered it: when the limit that fits now
// is a MiB or more above the current one, at most every raiseEvery (each
// reload interrupts watchers for a few seconds).
func (g *diskGuard) raiseLimit() {
	c := g.b.ns.JetStreamConfig()
	if c == nil || c.MaxStore >= g.b.cfg.MaxStore || g.b.ns.JetStreamIsClustered() || time.Since(g.raisedAt) < raiseEvery {
		return
	}
	avail, _ := diskSpace(g.b.cfg.DataDir)
	want := g.fittingLimit(avail)
	if want-c.MaxStore < 1<<20 {
		return
	}
	g.raisedAt = time.Now()
	if err := g.reloadJetStream(want); err != nil {
		g.b.logger.Error("JetStream could not be loaded again with a higher store limit", "err", err)
	}
}

// reloadJetStream stops JetStream and starts it again from the store on
// disk, which clears the streams' write failures, with the store limit
// limit.
func (g *diskGuard) reloadJetStream(limit int64) error {
	b := g.b
	old := b.ns.JetStreamConfig()
	if old == nil {
		return errors.New("JetStream is not running")
	}
	start := time.Now()
	if err := b.ns.ShutdownJetStream(); err != nil {
		return fmt.Errorf("stop JetStream: %w", err)
	}
	cfg := &server.JetStreamConfig{StoreDir: b.cfg.DataDir, MaxStore: limit, MaxMemory: old.MaxMemory,
		SyncInterval: old.SyncInterval, SyncAlways: old.SyncAlways, Strict: old.Strict}
	if err := b.ns.EnableJetStream(cfg); err != nil {
		return fmt.Errorf("start JetStream: %w", err)
	}
	avail, _ := diskSpace(b.cfg.DataDir)
	b.logger.Warn("JetStream loaded again: it writes again", "store_limit", bytesize.Format(limit),
		"planned_limit", bytesize.Format(b.cfg.MaxStore), "free", bytesize.Format(avail), "took", time.Since(start).Round(time.Millisecond))
	return nil
}
