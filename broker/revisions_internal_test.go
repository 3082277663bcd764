package broker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

func TestRevisionsToDrop(t *testing.T) {
	mine := func(vs ...uint64) []revMeta {
		var out []revMeta
		for _, v := range vs {
			out = append(out, revMeta{Version: v, Nonce: "n1"})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		revs []revMeta
		keep int
		want []uint64
	}{
		{"none", nil, 10, nil},
		{"within the window", mine(1, 2, 3), 10, nil},
		{"exactly the window", mine(1, 2, 3), 3, nil},
		{"12 with history 10", mine(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), 10, []uint64{1, 2}},
		{"out of order", mine(12, 3, 11, 4, 10, 5), 3, []uint64{3, 4, 5}},
		{"history 1 keeps the newest", mine(7, 8), 1, []uint64{7}},
		{"history lowered", mine(1, 2, 3, 4, 5), 2, []uint64{1, 2, 3}},
		{"an old spec without history: the default", mine(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), 0, []uint64{1}},
		{"an earlier app of the same name", append(mine(1, 2), revMeta{Version: 7, Nonce: "old"}, revMeta{Version: 1, Nonce: "old"}), 10, []uint64{1, 7}},
		{"gaps count as kept versions", mine(2, 5, 9), 2, []uint64{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := revisionsToDrop(tc.revs, "n1", tc.keep); !slices.Equal(got, tc.want) {
				t.Errorf("revisionsToDrop = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRollbackTarget(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kept    []uint64
		same    map[uint64]bool
		current uint64
		to      uint64
		want    uint64
		code    int
		say     string
	}{
		{"the one before", []uint64{3, 2, 1}, nil, 3, 0, 2, 0, ""},
		{"the one before, with a gap", []uint64{9, 5, 4}, nil, 9, 0, 5, 0, ""},
		{"a kept version", []uint64{3, 2, 1}, nil, 3, 1, 1, 0, ""},
		{"after a rollback, the one before is the version rolled back from", []uint64{4, 3, 2, 1}, nil, 4, 0, 3, 0, ""},
		{"nothing before", []uint64{1}, nil, 1, 0, 0, 404, "keeps no version before"},
		{"only the current one kept (a spec from before the record)", []uint64{7}, nil, 7, 0, 0, 404, "kept: 7"},
		{"not kept", []uint64{12, 11, 10}, nil, 12, 2, 0, 404, "kept: 12, 11, 10"},
		{"the current one", []uint64{3, 2}, nil, 3, 3, 0, 409, "already runs version 3"},
		{"a future one", []uint64{3, 2}, nil, 3, 4, 0, 400, "current version is 3"},
		{"the one before is the same spec: the newest that differs", []uint64{4, 3, 2, 1}, map[uint64]bool{3: true, 2: true}, 4, 0, 1, 0, ""},
		{"every one before is the same", []uint64{3, 2}, map[uint64]bool{2: true}, 3, 0, 0, 409, "is the same spec"},
		{"far past the end", []uint64{3}, nil, 3, 1 << 62, 0, 400, "no version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rollbackTarget("web", tc.kept, tc.same, tc.current, tc.to)
			if tc.code == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("rollbackTarget = %d, %v; want %d", got, err, tc.want)
				}
				return
			}
			e, ok := clientsdk.AsError(err)
			if !ok || e.Code != tc.code || !strings.Contains(e.Message, tc.say) {
				t.Fatalf("rollbackTarget = %d, %v; want %d saying %q", got, err, tc.code, tc.say)
			}
		})
	}
}

func TestKeptSpecsAndHistory(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	spec := func(v uint64, nonce string, instances int) clientsdk.AppSpec {
		return clientsdk.AppSpec{Name: "web", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: []string{"/srv/web"},
			Instances: instances, Version: v, TokenNonce: nonce, PushedAt: at.Add(time.Duration(v) * time.Minute), PushedBy: "me@here"}
	}
	cur := spec(3, "n", 3)
	cur.Revision, cur.RollbackOf = 42, 1
	for _, tc := range []struct {
		name     string
		revs     []clientsdk.AppSpec
		cur      clientsdk.AppSpec
		versions []uint64
	}{
		{"the record", []clientsdk.AppSpec{spec(1, "n", 1), spec(2, "n", 2), cur}, cur, []uint64{3, 2, 1}},
		{"an earlier app's revisions are not listed", []clientsdk.AppSpec{spec(1, "old", 1), spec(2, "n", 2), cur}, cur, []uint64{3, 2}},
		{"a spec from before the record", nil, cur, []uint64{3}},
		{"the current spec's record is missing", []clientsdk.AppSpec{spec(2, "n", 2)}, cur, []uint64{3, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kept := keptSpecs(tc.revs, tc.cur)
			var got []uint64
			for _, k := range kept {
				got = append(got, k.Version)
			}
			if !slices.Equal(got, tc.versions) {
				t.Fatalf("keptSpecs = %v, want %v", got, tc.versions)
			}
			h := historyOf(kept, tc.cur.Version)
			if !h[0].Current || h[0].Version != 3 || h[0].RollbackOf != 1 || !h[len(h)-1].Oldest || h[len(h)-1].Changes != nil {
				t.Fatalf("history = %+v", h)
			}
			for _, e := range h[1:] {
				if e.Current {
					t.Fatalf("version %d is marked current too", e.Version)
				}
			}
			if len(h) > 1 && (len(h[0].Changes) != 1 || h[0].Changes[0].String() != "instances: 2 → 3") {
				t.Fatalf("the changes of version 3 = %v, want instances 2 → 3", h[0].Changes)
			}
		})
	}
}

func TestKeepService(t *testing.T) {
	for _, tc := range []struct {
		cur, next, want string
		code            int
	}{
		{"", "", "", 0},
		{"shop", "", "shop", 0}, // a push by hand keeps the owner
		{"", "shop", "shop", 0}, // a deploy adopts a hand-pushed app
		{"shop", "shop", "shop", 0},
		{"shop", "blog", "", 409}, // never taken over
	} {
		next := clientsdk.AppSpec{Name: "web", Service: tc.next}
		err := keepService(clientsdk.AppSpec{Name: "web", Service: tc.cur}, &next)
		if tc.code != 0 {
			if e, ok := clientsdk.AsError(err); !ok || e.Code != tc.code || e.Type != "ServiceTaken" {
				t.Errorf("%q over %q: %v, want %d", tc.next, tc.cur, err, tc.code)
			}
			continue
		}
		if err != nil || next.Service != tc.want {
			t.Errorf("%q over %q: service %q, %v; want %q", tc.next, tc.cur, next.Service, err, tc.want)
		}
	}
}
