package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// AssetLimits sizes the JetStream assets dartup creates.
type AssetLimits struct {
	// Replicas for every asset (1 on a single server).
	Replicas int
	// LogsMaxAge and LogsMaxBytes bound the logs stream.
	LogsMaxAge   time.Duration
	LogsMaxBytes int64
	// EventsMaxAge and EventsMaxBytes bound the events stream.
	EventsMaxAge   time.Duration
	EventsMaxBytes int64
}

// DefaultAssetLimits are the limits used by `dartup serve`.
var DefaultAssetLimits = AssetLimits{
	Replicas:       1,
	LogsMaxAge:     7 * 24 * time.Hour,
	LogsMaxBytes:   256 << 20,
	EventsMaxAge:   30 * 24 * time.Hour,
	EventsMaxBytes: 64 << 20,
}

// EnsureAssets creates or updates, idempotently, every JetStream asset dartup
// uses (see clientsdk's bucket and stream names). It is safe to call on every
// start and from several servers at once.
func EnsureAssets(ctx context.Context, js jetstream.JetStream, lim AssetLimits) error {
	if lim.Replicas < 1 {
		lim.Replicas = 1
	}
	storage := jetstream.FileStorage
	// Create the assets in parallel: in a cluster each one waits for the
	// election of its own stream leader.
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	do := func(what string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := wrap(what, f()); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	do("object store "+clientsdk.ArtifactsBucket, func() error {
		_, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      clientsdk.ArtifactsBucket,
			Description: "dartup: pushed artifacts by app and SHA-256",
			Storage:     storage,
			Replicas:    lim.Replicas,
		})
		return err
	})
	kvs := []jetstream.KeyValueConfig{
		{Bucket: clientsdk.AppsBucket, Description: "dartup: desired state (AppSpec per app)", History: 16},
		{Bucket: clientsdk.RevisionsBucket, Description: "dartup: the versions each app keeps (APP.VERSION → AppSpec)", History: 1},
		{Bucket: clientsdk.NodesBucket, Description: "dartup: live runner nodes", History: 1, TTL: 30 * time.Second, LimitMarkerTTL: time.Second},
		{Bucket: clientsdk.PlacementBucket, Description: "dartup: instance claims", History: 1, LimitMarkerTTL: time.Second},
		{Bucket: clientsdk.StatusBucket, Description: "dartup: instance status", History: 1},
		{Bucket: clientsdk.SecretsBucket, Description: "dartup: cluster-wide secrets", History: 1},
	}
	for _, kv := range kvs {
		kv.Storage = storage
		kv.Replicas = lim.Replicas
		do("KV bucket "+kv.Bucket, func() error {
			_, err := js.CreateOrUpdateKeyValue(ctx, kv)
			return err
		})
	}
	streams := []jetstream.StreamConfig{
		{Name: clientsdk.LogsStream, Description: "dartup: worker output lines", Subjects: []string{clientsdk.LogsSubjects},
			MaxAge: lim.LogsMaxAge, MaxBytes: lim.LogsMaxBytes, Discard: jetstream.DiscardOld},
		{Name: clientsdk.EventsStream, Description: "dartup: lifecycle events", Subjects: []string{clientsdk.EventsSubjects},
			MaxAge: lim.EventsMaxAge, MaxBytes: lim.EventsMaxBytes, Discard: jetstream.DiscardOld},
	}
	var sourced []jetstream.StreamConfig
	for _, sc := range eventStreams(lim) {
		sc.Storage, sc.Replicas = storage, lim.Replicas
		if len(sc.Sources) > 0 {
			sourced = append(sourced, sc)
			continue
		}
		do("stream "+sc.Name, func() error { return ensureStream(ctx, js, sc) })
	}
	for _, sc := range streams {
		sc.Storage = storage
		sc.Replicas = lim.Replicas
		if lim.Replicas == 1 {
			// Log lines and events need not wait for the disk (a sync per
			// line would cap the logs at about 13,000 lines/s); JetStream
			// allows this only on a stream of one replica.
			sc.PersistMode = jetstream.AsyncPersistMode
		}
		do("stream "+sc.Name, func() error { return ensureStream(ctx, js, sc) })
	}
	wg.Wait()
	// A stream with sources is made or updated alone, after the others:
	// nats-server checks every stream's sources while it updates any
	// stream, unguarded against a concurrent update of a sourcing stream
	// (a data race in nats-server 2.15.2 that -race reports).
	for _, sc := range sourced {
		if err := wrap("stream "+sc.Name, ensureStream(ctx, js, sc)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// eventStreams are the streams of async invocations, schedules and dead
// letters (docs/events.md). The async stream is a work queue (an event is
// deleted once a lambda ran it) that refuses new events when full rather
// than drop stored ones; it sources the schedules' ticks as async
// invocations. The schedules stream holds JetStream message schedules,
// which the server fires once per cluster; it cannot refuse new messages
// (JetStream does not allow discard-new with schedules), so it keeps at most
// 100 ticks per lambda. The dead letters stream keeps 14 days. The counters
// stream holds JetStream counters: the retries of each lambda's events.
func eventStreams(lim AssetLimits) []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{Name: clientsdk.SchedulesStream, Description: "dartup: lambdas' schedules and their ticks",
			Subjects:  []string{clientsdk.SchedulesPrefix + ".*.*", clientsdk.TicksPrefix + ".*"},
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld, MaxMsgsPerSubject: 100,
			MaxBytes: lim.EventsMaxBytes, AllowMsgSchedules: true, AllowRollup: true},
		{Name: clientsdk.AsyncStream, Description: "dartup: async invocations until they ran",
			Subjects:  []string{clientsdk.AsyncPrefix + ".*"},
			Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew, MaxAge: clientsdk.MaxMaxEventAge,
			MaxBytes: lim.LogsMaxBytes, MaxMsgSize: asyncMaxMsgSize, Duplicates: 2 * time.Minute,
			Sources: []*jetstream.StreamSource{{Name: clientsdk.SchedulesStream, SubjectTransforms: []jetstream.SubjectTransformConfig{
				{Source: clientsdk.TicksPrefix + ".*", Destination: clientsdk.AsyncPrefix + ".{{wildcard(1)}}"}}}}},
		{Name: clientsdk.DLQStream, Description: "dartup: async invocations that failed for good",
			Subjects:  []string{clientsdk.DLQPrefix + ".*"},
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld, MaxAge: 14 * 24 * time.Hour,
			MaxBytes: lim.EventsMaxBytes},
		{Name: clientsdk.AsyncCountersStream, Description: "dartup: counts of the lambdas' async invocations (retries)",
			Subjects:  []string{clientsdk.CountersPrefix + ".*.*"},
			Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld, MaxMsgsPerSubject: 1,
			MaxBytes: 8 << 20, AllowMsgCounter: true},
	}
}

// asyncMaxMsgSize bounds a stored async event: a lambda's 6 MiB event and
// room for headers.
const asyncMaxMsgSize = 6<<20 + 64<<10

// ensureStream creates or updates a stream. JetStream cannot change a
// stream's persist mode: a logs or events stream whose mode no longer fits
// (made before dartup set it, or by a single server that now joined a
// cluster) is deleted and made again, its history lost.
func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	if st, err := js.Stream(ctx, sc.Name); err == nil && st.CachedInfo().Config.PersistMode != sc.PersistMode {
		if err := js.DeleteStream(ctx, sc.Name); err != nil {
			return fmt.Errorf("make %s again with persist mode %s: %w", sc.Name, sc.PersistMode, err)
		}
	}
	_, err := js.CreateOrUpdateStream(ctx, sc)
	return err
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("create %s: %w", what, err)
}
