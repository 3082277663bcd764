package clientsdk_test

import (
	"slices"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

func TestDiffSpecs(t *testing.T) {
	base := clientsdk.AppSpec{Name: "web", Runtime: clientsdk.RuntimeCommand, Command: []string{"./web"},
		Env: map[string]string{"A": "1", "SECRET": "x"}}
	change := func(f func(*clientsdk.AppSpec)) clientsdk.AppSpec {
		s := base
		s.Env = map[string]string{"A": "1", "SECRET": "x"}
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		new  clientsdk.AppSpec
		want []string
	}{
		{"same", change(func(*clientsdk.AppSpec) {}), nil},
		{"server fields", change(func(s *clientsdk.AppSpec) {
			s.PushedAt, s.PushedBy, s.Version, s.Revision, s.Stopped = time.Now(), "me@here", 7, 99, true
		}), nil},
		{"defaults spelled out", change(func(s *clientsdk.AppSpec) { s.Instances, s.History = 1, 10 }), nil},
		{"instances", change(func(s *clientsdk.AppSpec) { s.Instances = 3 }), []string{"instances: 1 → 3"}},
		{"env hidden", change(func(s *clientsdk.AppSpec) { s.Env["SECRET"] = "y"; s.Env["NEW"] = "z"; delete(s.Env, "A") }),
			[]string{"-env.A", "+env.NEW", "env.SECRET changed"}},
		{"command", change(func(s *clientsdk.AppSpec) { s.Command = []string{"./web2"} }), []string{`command: ["./web"] → ["./web2"]`}},
	} {
		var got []string
		for _, c := range clientsdk.DiffSpecs(base, tc.new) {
			got = append(got, c.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// DiffSpecs leaves its arguments as they are: an artifact's file name is
// set aside in a copy, not in the caller's spec.
func TestDiffSpecsLeavesSpecsAlone(t *testing.T) {
	old := clientsdk.AppSpec{Name: "web", Runtime: clientsdk.RuntimeExe, Artifact: &clientsdk.ArtifactRef{Object: "sha256/ab", SHA256: "ab", Size: 1, FileName: "web"}}
	new := old
	new.Artifact = &clientsdk.ArtifactRef{Object: "sha256/cd", SHA256: "cd", Size: 1, FileName: "web2"}
	if got := clientsdk.DiffSpecs(old, new); len(got) == 0 {
		t.Fatal("no change found between two artifacts")
	}
	if old.Artifact.FileName != "web" || new.Artifact.FileName != "web2" {
		t.Fatalf("DiffSpecs changed its arguments' file names: %q, %q", old.Artifact.FileName, new.Artifact.FileName)
	}
}
