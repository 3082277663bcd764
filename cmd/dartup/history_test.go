package main

import (
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

func TestShortChanges(t *testing.T) {
	ch := func(field, old, new string) clientsdk.SpecChange {
		return clientsdk.SpecChange{Field: field, Old: old, New: new}
	}
	for _, tc := range []struct {
		name string
		v    clientsdk.HistoryEntry
		want string
	}{
		{"first version", clientsdk.HistoryEntry{Version: 1, Oldest: true}, "first version"},
		{"oldest kept", clientsdk.HistoryEntry{Version: 4, Oldest: true}, "(oldest kept)"},
		{"same spec again", clientsdk.HistoryEntry{Version: 5}, "no change"},
		{"artifact once, env by name, short values", clientsdk.HistoryEntry{Version: 5, Changes: []clientsdk.SpecChange{
			ch("artifact.object", `"sha256/aa"`, `"sha256/bb"`), ch("artifact.sha256", `"aa"`, `"bb"`),
			ch("env.A", "(hidden)", "(hidden)"), ch("instances", "1", "3")}}, "artifact, env.A, instances 1→3"},
		{"added, removed, strings unquoted", clientsdk.HistoryEntry{Version: 5, Changes: []clientsdk.SpecChange{
			ch("env.NEW", "", "(hidden)"), ch("health", `"tcp"`, ""), ch("ready", `"tcp"`, `"http:/healthz"`)}}, "+env.NEW, -health, ready tcp→http:/healthz"},
		{"long values by name, then +N more", clientsdk.HistoryEntry{Version: 5, Changes: []clientsdk.SpecChange{
			ch("args", `["--a-long-flag","x"]`, `["--another-long-flag"]`), ch("env.A", "(hidden)", "(hidden)"),
			ch("env.B", "(hidden)", "(hidden)"), ch("env.C", "(hidden)", "(hidden)"), ch("instances", "1", "2")}}, "args, env.A, env.B, +2 more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shortChanges(tc.v, 3); got != tc.want {
				t.Errorf("shortChanges = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPrintHistory(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h := &clientsdk.HistoryResponse{Name: "web", Current: 3, Keep: 10, RollbackTo: 2, Versions: []clientsdk.HistoryEntry{
		{Version: 3, PushedAt: now.Add(-5 * time.Second), PushedBy: "me@box", RollbackOf: 1, Current: true,
			Changes: []clientsdk.SpecChange{{Field: "env.WEB_VERSION", Old: "(hidden)", New: "(hidden)"}}},
		{Version: 2, PushedAt: now.Add(-3 * time.Minute), PushedBy: "me@box", Changes: []clientsdk.SpecChange{{Field: "instances", Old: "1", New: "3"}}},
		{Version: 1, PushedAt: now.Add(-time.Hour), Oldest: true},
	}}
	var b strings.Builder
	if err := printHistory(&b, h, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	for _, want := range []string{"VERSION", "* 3", "5s ago", "env.WEB_VERSION", "rollback of v1", "  2", "instances 1→3", "first version",
		"web keeps its last 10 versions", "'dartup rollback web' runs version 2 again"} {
		if !strings.Contains(out, want) {
			t.Errorf("history table lacks %q:\n%s", want, out)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"", 0, true}, {"3", 3, true}, {"010", 10, true}, {"0", 0, false}, {"0x3", 0, false}, {"-1", 0, false}, {"v3", 0, false},
	} {
		got, err := parseVersion(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseVersion(%q) = %d, %v", tc.in, got, err)
		}
	}
}
