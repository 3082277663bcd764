package broker

import (
	"context"
	"strings"
	"testing"
)

func TestPlanStorage(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                string
		in                  storageInput
		store, logs, events int64
		err, warning        string
	}{
		{name: "64 MiB disk, fresh", in: storageInput{Avail: 64 * mib},
			store: 48 * mib, logs: 6 * mib, events: 3 * mib / 2},
		{name: "64 MiB disk beside a local runner", in: storageInput{Avail: 64 * mib, LocalRunner: true},
			store: 24 * mib, logs: 3 * mib, events: mib},
		{name: "large disk: the caps", in: storageInput{Avail: 100 << 30},
			store: 75 << 30, logs: 256 * mib, events: 64 * mib},
		{name: "a full disk that holds a store restarts", in: storageInput{Avail: 51 * mib, Used: 500 * mib},
			store: 500*mib + 51*mib/4*3, logs: (500*mib + 51*mib/4*3) / 8, events: (500*mib + 51*mib/4*3) / 32},
		{name: "too little free space", in: storageInput{Avail: 16 * mib},
			err: "needs a store of at least 16.0 MiB"},
		{name: "unknown disk", in: storageInput{Avail: -1},
			store: 1 << 40, logs: 256 * mib, events: 64 * mib},
		{name: "explicit store", in: storageInput{Avail: 1 << 30, MaxStore: 100 * mib},
			store: 100 * mib, logs: 25 * mib / 2, events: 25 * mib / 8},
		{name: "explicit store below the minimum", in: storageInput{Avail: 1 << 30, MaxStore: 8 * mib},
			err: "below the minimum"},
		{name: "explicit store larger than the disk", in: storageInput{Avail: 64 * mib, MaxStore: 1 << 30},
			store: 1 << 30, logs: 128 * mib, events: 32 * mib, warning: "more than the disk can hold"},
		{name: "explicit streams", in: storageInput{Avail: 1 << 30, LogsMaxBytes: 10 * mib, EventsMaxBytes: 2 * mib},
			store: 768 * mib, logs: 10 * mib, events: 2 * mib},
		{name: "streams over half the store", in: storageInput{Avail: 64 * mib, LogsMaxBytes: 40 * mib},
			err: "more than half"},
		{name: "a logs stream of a byte", in: storageInput{Avail: 1 << 30, LogsMaxBytes: 1},
			err: "--logs-max-bytes 1 B is below the minimum"},
		{name: "an events stream of 10 bytes", in: storageInput{Avail: 1 << 30, EventsMaxBytes: 10},
			err: "--events-max-bytes 10 B is below the minimum"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := planStorage(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.MaxStore != c.store || (c.logs != 0 && p.LogsMaxBytes != c.logs) || (c.events != 0 && p.EventsMaxBytes != c.events) {
				t.Errorf("plan = store %d logs %d events %d, want %d %d %d", p.MaxStore, p.LogsMaxBytes, p.EventsMaxBytes, c.store, c.logs, c.events)
			}
			if !strings.Contains(p.Warning, c.warning) || (c.warning == "") != (p.Warning == "") {
				t.Errorf("warning = %q, want %q", p.Warning, c.warning)
			}
		})
	}
}

// A single server syncs every JetStream write; --sync interval does not.
func TestSyncModes(t *testing.T) {
	for mode, want := range map[SyncMode]bool{SyncAuto: true, SyncAlways: true, SyncInterval: false} {
		b, err := Start(context.Background(), Config{DataDir: t.TempDir(), NATSAddr: "127.0.0.1:0", Sync: mode})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.ns.JetStreamConfig().SyncAlways; got != want {
			t.Errorf("--sync %s: JetStream SyncAlways = %v, want %v", mode, got, want)
		}
		_ = b.Shutdown(context.Background())
	}
}
