package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// The apps ledger. JetStream recovers a damaged stream file by keeping what
// it can read: a truncated apps bucket silently loses the newest specs, and
// a lost removal marker brings a removed app back to life. Each server keeps
// a copy of the last known spec or removal of every app in DATA/apps.ledger
// (written atomically, synced); at start it compares the bucket with it,
// puts back what the bucket lost, and says loudly what it found.

// ledgerName is the ledger's file in the data dir.
const ledgerName = "apps.ledger"

// ledgerEntry is the last known state of one app.
type ledgerEntry struct {
	// Revision is the apps bucket's revision of that state.
	Revision uint64 `json:"revision"`
	// Removed: the app was removed at Revision.
	Removed bool `json:"removed,omitempty"`
	// Spec is the stored value (absent when Removed).
	Spec json.RawMessage `json:"spec,omitempty"`
}

// ledgerFile is the ledger's content.
type ledgerFile struct {
	Written time.Time              `json:"written"`
	Apps    map[string]ledgerEntry `json:"apps"`
}

// storeEntry is the newest entry of one key in the apps bucket.
type storeEntry struct {
	Revision uint64
	Removed  bool
}

// damageKind names what the bucket lost.
type damageKind string

const (
	// damageLost: an app's spec is gone from the bucket.
	damageLost damageKind = "lost"
	// damageRolledBack: the bucket holds an older revision than the ledger.
	damageRolledBack damageKind = "rolled back"
	// damageRevived: a removed app is back in the bucket.
	damageRevived damageKind = "revived"
)

// damage is one difference between the ledger and the bucket.
type damage struct {
	App   string
	Kind  damageKind
	Known ledgerEntry
	Found *storeEntry // nil: no entry at all
}

// String says what was found, for the log and `info`.
func (d damage) String() string {
	switch {
	case d.Kind == damageRevived:
		return fmt.Sprintf("app %s was removed (revision %d) but the apps bucket holds its revision %d again", d.App, d.Known.Revision, d.Found.Revision)
	case d.Found == nil:
		return fmt.Sprintf("app %s (revision %d) is missing from the apps bucket", d.App, d.Known.Revision)
	case d.Found.Removed:
		return fmt.Sprintf("app %s (revision %d) is removed in the apps bucket at the older revision %d", d.App, d.Known.Revision, d.Found.Revision)
	}
	return fmt.Sprintf("app %s went back from revision %d to %d in the apps bucket", d.App, d.Known.Revision, d.Found.Revision)
}

// compareLedger lists what the bucket lost against the ledger: specs and
// removals the ledger knows at a revision the bucket no longer reaches.
// Entries newer in the bucket than in the ledger are not damage (the ledger
// is written after the bucket).
func compareLedger(known map[string]ledgerEntry, store map[string]storeEntry) []damage {
	var out []damage
	for app, k := range known {
		s, ok := store[app]
		switch {
		case !ok && k.Removed:
		case !ok:
			out = append(out, damage{App: app, Kind: damageLost, Known: k})
		case s.Revision >= k.Revision:
		case k.Removed && !s.Removed:
			out = append(out, damage{App: app, Kind: damageRevived, Known: k, Found: &s})
		case k.Removed:
		case s.Removed:
			out = append(out, damage{App: app, Kind: damageLost, Known: k, Found: &s})
		default:
			out = append(out, damage{App: app, Kind: damageRolledBack, Known: k, Found: &s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// ledger keeps DATA/apps.ledger in step with the apps bucket.
type ledger struct {
	path string
	kv   jetstream.KeyValue
	b    *Broker

	mu   sync.Mutex
	apps map[string]ledgerEntry
	// damage is what the check at start found (for `info`).
	damage []string
	// failing: the last write of the ledger failed (follow's goroutine).
	failing bool
	stop    context.CancelFunc
	done    chan struct{}
}

// startLedger checks the apps bucket against the ledger, repairs and
// reports what the bucket lost, and keeps the ledger up to date from then
// on.
func startLedger(ctx context.Context, b *Broker) (*ledger, error) {
	kv, err := b.js.KeyValue(ctx, clientsdk.AppsBucket)
	if err != nil {
		return nil, err
	}
	l := &ledger{path: filepath.Join(b.cfg.DataDir, ledgerName), kv: kv, b: b, done: make(chan struct{})}
	known, err := l.read()
	store, values, rerr := readStore(ctx, kv)
	if rerr != nil {
		return nil, fmt.Errorf("read the apps bucket: %w", rerr)
	}
	switch {
	case err != nil:
		l.report(fmt.Sprintf("the apps ledger %s cannot be read (%v): the apps bucket (%d apps) was not checked; the ledger is written again from it", l.path, err, len(values)))
	case known == nil && len(values) > 0:
		l.report(fmt.Sprintf("the apps ledger %s is missing: the apps bucket (%d apps) was not checked; the ledger is written again from it", l.path, len(values)))
	}
	if found := compareLedger(known, store); len(found) > 0 {
		l.repair(ctx, found)
		if store, values, err = readStore(ctx, kv); err != nil { // as repaired
			return nil, err
		}
	}
	l.apps = map[string]ledgerEntry{}
	for app, s := range store {
		l.apps[app] = ledgerEntry{Revision: s.Revision, Removed: s.Removed, Spec: values[app]}
	}
	if err := l.write(); err != nil {
		return nil, fmt.Errorf("write the apps ledger %s: %w", l.path, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	// From the start (not updates only): nothing between the read above
	// and the watch is missed; what is already noted is skipped.
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, err
	}
	go l.follow(wctx, w)
	return l, nil
}

// read loads the ledger; nil without error when there is none yet.
func (l *ledger) read() (map[string]ledgerEntry, error) {
	b, err := os.ReadFile(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f ledgerFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	if f.Apps == nil {
		f.Apps = map[string]ledgerEntry{}
	}
	return f.Apps, nil
}

// readStore reads the newest entry of every key of the apps bucket, removals
// included, and the values of the others.
func readStore(ctx context.Context, kv jetstream.KeyValue) (map[string]storeEntry, map[string]json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	entries, err := watchEntries(ctx, kv)
	if err != nil {
		return nil, nil, err
	}
	store, values := map[string]storeEntry{}, map[string]json.RawMessage{}
	for _, e := range entries {
		removed := e.Operation() != jetstream.KeyValuePut
		store[e.Key()] = storeEntry{Revision: e.Revision(), Removed: removed}
		if !removed {
			values[e.Key()] = json.RawMessage(e.Value())
		}
	}
	return store, values, nil
}

// report logs a finding at error level and keeps it for `info`.
func (l *ledger) report(msg string) {
	l.b.logger.Error(msg)
	l.damage = append(l.damage, msg)
}

// repair puts back what the bucket lost: the ledger's spec of a lost or
// rolled-back app, the removal of a revived one. Each finding is logged at
// error level and kept for `info`.
func (l *ledger) repair(ctx context.Context, found []damage) {
	log := l.b.logger
	log.Error("the apps bucket lost desired state (a damaged or truncated store file?); putting back what the apps ledger knows",
		"apps", len(found), "ledger", l.path)
	for _, d := range found {
		var err error
		action := "put back from the ledger"
		switch {
		case clientsdk.ValidateName(d.App) != nil:
			err = fmt.Errorf("the ledger's name %q is not an app name", d.App)
		case d.Known.Removed:
			action = "removed again"
			err = l.kv.Purge(ctx, d.App)
		default:
			if err = validLedgerSpec(d.App, d.Known.Spec); err == nil {
				_, err = l.kv.Put(ctx, d.App, d.Known.Spec)
			}
		}
		if err != nil {
			action = "could not be repaired: " + err.Error()
		}
		msg := d.String() + "; " + action
		log.Error("apps bucket damage: "+msg, "app", d.App)
		l.damage = append(l.damage, msg)
	}
}

// validLedgerSpec checks that a spec kept in the ledger is one to put back:
// an AppSpec of that name that passes the server's checks.
func validLedgerSpec(app string, raw json.RawMessage) error {
	var s clientsdk.AppSpec
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("the ledger's spec does not decode: %w", err)
	}
	if s.Name != app {
		return fmt.Errorf("the ledger's spec is named %q", s.Name)
	}
	return s.Validate()
}

// follow writes every change of the bucket into the ledger until ctx ends;
// bursts of changes are written once.
func (l *ledger) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer close(l.done)
	defer func() { _ = w.Stop() }()
	retry := time.NewTicker(2 * time.Second)
	defer retry.Stop()
	dirty := false
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
			if dirty { // the last write failed (a full disk?): try again
				dirty = l.writeOrWarn()
			}
			continue
		case e = <-w.Updates():
		}
		if e == nil {
			continue
		}
		l.note(e)
		for drained := false; !drained; { // take what else is waiting
			select {
			case e = <-w.Updates():
				// nil: the marker after the initial values, or the
				// channel closed by a shutdown (which would spin here).
				if drained = e == nil; !drained {
					l.note(e)
				}
			default:
				drained = true
			}
		}
		dirty = l.writeOrWarn()
	}
}

// writeOrWarn writes the ledger; it returns true (to try again) when that
// failed, saying so once per failure run.
func (l *ledger) writeOrWarn() bool {
	err := l.write()
	switch {
	case err == nil && l.failing:
		l.failing = false
		l.b.logger.Info("the apps ledger is written again", "file", l.path)
	case err != nil && !l.failing:
		l.failing = true
		l.b.logger.Warn("cannot write the apps ledger; trying again every 2 s", "file", l.path, "err", err)
	}
	return err != nil
}

// note records one change of the bucket.
func (l *ledger) note(e jetstream.KeyValueEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.apps[e.Key()]; ok && old.Revision > e.Revision() {
		return
	}
	if e.Operation() == jetstream.KeyValuePut {
		l.apps[e.Key()] = ledgerEntry{Revision: e.Revision(), Spec: json.RawMessage(e.Value())}
	} else {
		l.apps[e.Key()] = ledgerEntry{Revision: e.Revision(), Removed: true}
	}
}

// write replaces the ledger file atomically and syncs it (writeAtomic).
func (l *ledger) write() error {
	l.mu.Lock()
	b, err := json.Marshal(ledgerFile{Written: time.Now().UTC(), Apps: l.apps})
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return writeAtomic(l.path, b, 0o600)
}

// Damage returns what the check at start found and repaired.
func (l *ledger) Damage() []string {
	if l == nil {
		return nil
	}
	return l.damage
}

// close stops following the bucket.
func (l *ledger) close() {
	if l == nil || l.stop == nil {
		return
	}
	l.stop()
	<-l.done
}
