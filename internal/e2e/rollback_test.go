package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// TestRollbackUnderLoad: a daemon behind `--http /` is pushed as version 1,
// then as version 2 (another WEB_VERSION); while 8 clients send requests
// through the gateway, `dartup rollback` rolls version 1 out again as
// version 3 without one failed request, and version 1 answers once it
// returns. `dartup history --json` lists the three versions, the rollback
// marked. A rollback to a version that never gets ready exits 1 and the
// running version keeps serving.
func TestRollbackUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("rollback rollout test skipped in -short mode")
	}
	web := testutil.BuildGo(t, "./internal/testutil/workers/web")
	s := startServe(t, testutil.TempDir(t), "--name", "rb1")
	push := func(version string, extra ...string) (string, int) {
		args := append([]string{"push", "--name", "rbweb", "-j", "2", "--http", "/", "--env", "WEB_VERSION=" + version}, extra...)
		return s.exitCode(append(args, web)...)
	}
	for _, v := range []string{"1", "2"} {
		if out, code := push(v); code != 0 {
			t.Fatalf("push of version %s: exit %d\n%s", v, code, out)
		}
	}
	url := s.httpURL + "/"
	if body := get(t, url); !strings.HasPrefix(body, "version=2 ") {
		t.Fatalf("after two pushes / answered %q", body)
	}

	res := underLoad(t, url, func() {
		if out, code := s.exitCode("rollback", "rbweb"); code != 0 || !strings.Contains(out, "version 3 is a rollback of version 1") {
			t.Errorf("rollback: exit %d\n%s", code, out)
		}
	})
	if res.failed != 0 || res.versions["version=1"] == 0 {
		t.Fatalf("rollback under load: %d failed (%v), versions %v", res.failed, res.failures, res.versions)
	}
	for _, v := range res.last {
		if v != "version=1" {
			t.Fatalf("after the rollback returned, a client still got %s", v)
		}
	}

	var h clientsdk.HistoryResponse
	if err := json.Unmarshal([]byte(s.dartup("history", "rbweb", "--json")), &h); err != nil {
		t.Fatal(err)
	}
	var versions []uint64
	for _, v := range h.Versions {
		versions = append(versions, v.Version)
	}
	top := h.Versions[0]
	if !slices.Equal(versions, []uint64{3, 2, 1}) || h.Current != 3 || !top.Current || top.RollbackOf != 1 || top.SHA256 == "" ||
		len(top.Changes) != 1 || top.Changes[0].Field != "env.WEB_VERSION" || top.Changes[0].New != "(hidden)" {
		t.Fatalf("history --json: %+v", h)
	}
	if out := s.dartup("history", "rbweb"); !strings.Contains(out, "rollback of v1") || !strings.Contains(out, "* 3") {
		t.Fatalf("history:\n%s", out)
	}

	t.Run("to a version that never gets ready", func(t *testing.T) {
		if out, code := push("4", "--env", "WEB_NEVER_READY=1", "--ready-timeout", "2s"); code == 0 {
			t.Fatalf("push of a version that never gets ready: exit 0\n%s", out)
		}
		if out, code := push("5"); code != 0 {
			t.Fatalf("push of version 5: exit %d\n%s", code, out)
		}
		var out string
		var code int
		res := underLoad(t, url, func() { out, code = s.exitCode("rollback", "rbweb", "--to", "4") })
		if code != 1 || !strings.Contains(out, "did not get ready") {
			t.Fatalf("rollback to a version that never gets ready: exit %d, want 1\n%s", code, out)
		}
		if res.failed != 0 || res.versions["version=4"] != 0 {
			t.Fatalf("during the failed rollback: %d failed (%v), versions %v", res.failed, res.failures, res.versions)
		}
		if body := get(t, url); !strings.HasPrefix(body, "version=5 ") {
			t.Fatalf("after the failed rollback / answered %q", body)
		}
	})
}
