package broker

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dartup/dartup/internal/bytesize"
)

// Storage sizing. JetStream refuses a stream whose byte limit does not fit
// in its store's maximum, and on its own takes 3/4 of the disk's free space
// at start as that maximum, not counting what it already stores: with fixed
// 256 MiB and 64 MiB reservations for the logs and events streams, a 64 MiB
// data disk could never start, nor a filled one restart. dartup sizes both
// from the disk instead.
const (
	// MinStore is the smallest JetStream store dartup starts with.
	MinStore = 16 << 20
	// maxLogsBytes and maxEventsBytes cap the automatic reservations.
	maxLogsBytes   = 256 << 20
	maxEventsBytes = 64 << 20
	// minStreamBytes is the smallest automatic reservation.
	minStreamBytes = 1 << 20
)

// storageInput is what the sizing decision looks at.
type storageInput struct {
	// Avail is the disk's free space for dartup's user, Used what the
	// JetStream store already holds on it; Avail < 0: unknown.
	Avail, Used int64
	// MaxStore, LogsMaxBytes and EventsMaxBytes are the operator's settings
	// (0: decide from the disk).
	MaxStore, LogsMaxBytes, EventsMaxBytes int64
	// LocalRunner: a runner in this process caches the artifacts it runs on
	// the same disk, so the store takes half as much of the free space.
	LocalRunner bool
}

// storagePlan is the sizing decision.
type storagePlan struct {
	MaxStore, LogsMaxBytes, EventsMaxBytes int64
	// Warning, when set, is logged at start.
	Warning string
}

// planStorage sizes JetStream's store and the logs and events streams'
// reservations: the store gets what it holds plus 3/4 of the free space
// (3/8 beside a local runner, whose cache holds a copy of the artifacts it
// runs; or --max-store), the logs stream 1/8 of that (at most 256 MiB) and the
// events stream 1/32 (at most 64 MiB), each at least 1 MiB.
func planStorage(in storageInput) (storagePlan, error) {
	p := storagePlan{MaxStore: in.MaxStore, LogsMaxBytes: in.LogsMaxBytes, EventsMaxBytes: in.EventsMaxBytes}
	switch {
	case p.MaxStore == 0 && in.Avail < 0:
		p.MaxStore = 1 << 40 // the disk cannot be asked: JetStream's own default
	case p.MaxStore == 0:
		p.MaxStore = in.Used + storeShare(in.Avail, in.LocalRunner)
		if p.MaxStore < MinStore {
			return p, fmt.Errorf("the data disk has %s free and JetStream stores %s: dartup needs a store of at least %s (it takes %s of the free space); free space on that disk, or set --max-store",
				bytesize.Format(in.Avail), bytesize.Format(in.Used), bytesize.Format(MinStore), map[bool]string{false: "3/4", true: "3/8"}[in.LocalRunner])
		}
	case p.MaxStore < MinStore:
		return p, fmt.Errorf("--max-store %s is below the minimum of %s", bytesize.Format(p.MaxStore), bytesize.Format(MinStore))
	case in.Avail >= 0 && p.MaxStore > in.Used+in.Avail:
		p.Warning = fmt.Sprintf("--max-store %s is more than the disk can hold (%s free, %s stored): the disk fills before JetStream's limit is reached",
			bytesize.Format(p.MaxStore), bytesize.Format(in.Avail), bytesize.Format(in.Used))
	}
	for _, x := range []struct {
		flag string
		v    int64
	}{{"--logs-max-bytes", p.LogsMaxBytes}, {"--events-max-bytes", p.EventsMaxBytes}} {
		if x.v != 0 && x.v < minStreamBytes {
			return p, fmt.Errorf("%s %s is below the minimum of %s (a smaller stream drops every line; 0 sizes it from the store)",
				x.flag, bytesize.Format(x.v), bytesize.Format(minStreamBytes))
		}
	}
	if p.LogsMaxBytes == 0 {
		p.LogsMaxBytes = min(max(p.MaxStore/8, minStreamBytes), maxLogsBytes)
	}
	if p.EventsMaxBytes == 0 {
		p.EventsMaxBytes = min(max(p.MaxStore/32, minStreamBytes), maxEventsBytes)
	}
	if r := p.LogsMaxBytes + p.EventsMaxBytes; r > p.MaxStore/2 {
		return p, fmt.Errorf("the logs (%s) and events (%s) streams would reserve %s, more than half of the %s store; lower --logs-max-bytes or --events-max-bytes, or raise --max-store",
			bytesize.Format(p.LogsMaxBytes), bytesize.Format(p.EventsMaxBytes), bytesize.Format(r), bytesize.Format(p.MaxStore))
	}
	return p, nil
}

// storeShare is the part of the free space the store may fill: 3/4, or
// 3/8 beside a local runner.
func storeShare(avail int64, localRunner bool) int64 {
	if localRunner {
		return avail / 8 * 3
	}
	return avail / 4 * 3
}

// dirSize sums the sizes of the regular files under dir (0 when it does not
// exist).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// sizeStorage decides the store's and the streams' sizes from the data
// disk and the operator's settings, before JetStream starts.
func (b *Broker) sizeStorage() error {
	b.storeDir = filepath.Join(b.cfg.DataDir, "jetstream")
	avail, _ := diskSpace(b.cfg.DataDir)
	p, err := planStorage(storageInput{
		Avail: avail, Used: dirSize(b.storeDir),
		MaxStore: b.cfg.MaxStore, LogsMaxBytes: b.cfg.Limits.LogsMaxBytes, EventsMaxBytes: b.cfg.Limits.EventsMaxBytes,
		LocalRunner: b.cfg.LocalRunner,
	})
	if err != nil {
		_ = os.Remove(b.disk.reservePath) // a refused start leaves nothing behind
		return fmt.Errorf("%s: %w", b.cfg.DataDir, err)
	}
	if p.Warning != "" {
		b.logger.Warn(p.Warning)
	}
	b.cfg.MaxStore, b.cfg.Limits.LogsMaxBytes, b.cfg.Limits.EventsMaxBytes = p.MaxStore, p.LogsMaxBytes, p.EventsMaxBytes
	b.logger.Debug("JetStream store sized", "max_store", bytesize.Format(p.MaxStore), "logs", bytesize.Format(p.LogsMaxBytes),
		"events", bytesize.Format(p.EventsMaxBytes), "disk_free", bytesize.Format(avail), "sync_always", b.syncAlways())
	return nil
}
