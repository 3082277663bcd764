package runner

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/proc"
)

func TestAllocateUID(t *testing.T) {
	none := func(uint32) bool { return false }
	systemHas := func(uids ...uint32) func(uint32) bool {
		return func(u uint32) bool {
			for _, x := range uids {
				if u == x {
					return true
				}
			}
			return false
		}
	}
	goneApps := func(apps ...string) func(string) bool {
		return func(a string) bool { return strings.Contains(strings.Join(apps, ","), a) }
	}
	for _, c := range []struct {
		name     string
		app      string
		byApp    map[string]uint32
		lo, hi   uint32
		taken    func(uint32) bool
		gone     func(string) bool
		want     uint32
		recycled string
		err      bool
	}{
		{name: "first app gets the lowest", app: "a", byApp: map[string]uint32{}, lo: 100, hi: 102, taken: none, gone: goneApps(), want: 100},
		{name: "an app keeps its number", app: "a", byApp: map[string]uint32{"a": 102}, lo: 100, hi: 102, taken: none, gone: goneApps(), want: 102},
		{name: "held numbers are skipped", app: "b", byApp: map[string]uint32{"a": 100}, lo: 100, hi: 102, taken: none, gone: goneApps(), want: 101},
		{name: "system users are skipped", app: "b", byApp: map[string]uint32{"a": 100}, lo: 100, hi: 102, taken: systemHas(101), gone: goneApps(), want: 102},
		{name: "full: a removed app's number is reused", app: "c", byApp: map[string]uint32{"a": 100, "b": 101}, lo: 100, hi: 101, taken: none, gone: goneApps("b"), want: 101, recycled: "b"},
		{name: "full and nothing removed", app: "c", byApp: map[string]uint32{"a": 100, "b": 101}, lo: 100, hi: 101, taken: none, gone: goneApps(), err: true},
		{name: "range at the top of uint32 does not wrap", app: "a", byApp: map[string]uint32{}, lo: 1<<32 - 1, hi: 1<<32 - 1, taken: systemHas(1<<32 - 1), gone: goneApps(), err: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, recycled, err := allocateUID(c.app, c.byApp, c.lo, c.hi, c.taken, c.gone)
			if (err != nil) != c.err || got != c.want || recycled != c.recycled {
				t.Fatalf("got %d %q %v, want %d %q err=%v", got, recycled, err, c.want, c.recycled, c.err)
			}
		})
	}
}

func TestParseUIDRange(t *testing.T) {
	for s, ok := range map[string]bool{"59000-59999": true, "70000-70000": true, "999-2000": false, "5-4": false,
		"60000-65534": false, "65535-70000": false, "1000": false, "a-b": false, "1000-2147483648": false} {
		if _, err := ParseUIDRange(s); (err == nil) != ok {
			t.Errorf("ParseUIDRange(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}

// fakeInfo is a FileInfo with a mode and an owner, for checkAccess.
type fakeInfo struct {
	mode     fs.FileMode
	uid, gid uint32
}

func (f fakeInfo) Name() string       { return "" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return &syscall.Stat_t{Uid: f.uid, Gid: f.gid} }

func TestCheckAccess(t *testing.T) {
	app := proc.Credential{UID: 59000, GID: 59000}
	tree := map[string]fakeInfo{
		"/":                   {fs.ModeDir | 0o755, 0, 0},
		"/usr":                {fs.ModeDir | 0o755, 0, 0},
		"/usr/bin":            {fs.ModeDir | 0o755, 0, 0},
		"/usr/bin/dart":       {0o755, 0, 0},
		"/root":               {fs.ModeDir | 0o700, 0, 0},
		"/root/dart":          {0o755, 0, 0},
		"/opt":                {fs.ModeDir | 0o750, 0, 59000},
		"/opt/dart":           {0o750, 0, 59000},
		"/opt/secret":         {0o700, 0, 59000},
		"/home":               {fs.ModeDir | 0o711, 0, 0},
		"/home/app":           {fs.ModeDir | 0o700, 59000, 59000},
		"/home/app/run":       {0o100, 59000, 0},
		"/home/app/noexec.sh": {0o644, 0, 0},
	}
	stat := func(p string) (fs.FileInfo, error) {
		if fi, ok := tree[p]; ok {
			return fi, nil
		}
		return nil, os.ErrNotExist
	}
	for _, c := range []struct {
		path string
		want fs.FileMode
		err  string
	}{
		{"/usr/bin/dart", needExec, ""},
		{"/usr/bin/dart", needRead, ""},
		{"/root/dart", needExec, "cannot enter /root"},
		{"/opt/dart", needExec, ""},
		{"/opt/secret", needRead, "cannot read /opt/secret"},
		{"/home/app/run", needExec, ""},
		{"/home/app/run", needRead, "cannot read /home/app/run"},
		{"/home/app/noexec.sh", needExec, "cannot run /home/app/noexec.sh"},
		{"/usr/bin/nope", needExec, "/usr/bin/nope does not exist"},
		{"relative/path", needExec, "not an absolute path"},
	} {
		err := checkAccess(c.path, app, c.want, stat)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("checkAccess(%s, %o) = %v, want %q", c.path, c.want, err, c.err)
		}
	}
}

func TestInheritable(t *testing.T) {
	for k, ok := range map[string]bool{"PATH": true, "LANG": true, "LC_ALL": true, "TZ": true, "TMPDIR": true,
		"DARTUP_URL": false, "DARTUP_PASSWORD": false, "NATS_CREDS": false, "HTTPS_PROXY": false, "https_proxy": false,
		"DATABASE_URL": false, "AWS_SECRET_ACCESS_KEY": false, "PGPASSWORD": false, "OLDPWD": false, "HOME": false,
		"AWS_LAMBDA_RUNTIME_API": false, "_LAMBDA_SERVER_PORT": false} {
		if got := inheritable(k); got != ok {
			t.Errorf("inheritable(%s) = %v, want %v", k, got, ok)
		}
	}
	if got := stripUserinfo("nats://ops:pw@a:4222,nats://b:4222"); got != "nats://a:4222,nats://b:4222" {
		t.Errorf("stripUserinfo = %q", got)
	}
	if ValidatePassEnv([]string{"DATABASE_URL"}) != nil || ValidatePassEnv([]string{"DARTUP_PASSWORD"}) == nil || ValidatePassEnv([]string{"A=B"}) == nil {
		t.Error("ValidatePassEnv")
	}
}

// chownTree hands a work dir over without touching anything a symlink in it
// points to outside (the runner is root; the dir is the app's).
func TestChownTreeStaysInside(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	base := t.TempDir()
	outside := filepath.Join(base, "secret")
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "app")
	for _, d := range []string{dir, filepath.Join(dir, "sub")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"link": outside, "dirlink": base, "sub/up": ".."} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := chownTree(dir, 59990, 59990); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) uint32 {
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Uid
	}
	if owner(outside) != 0 || owner(base) != 0 {
		t.Fatal("chownTree changed a file outside the dir")
	}
	for _, p := range []string{"", "sub", "sub/f", "link", "dirlink", "sub/up"} {
		if owner(filepath.Join(dir, p)) != 59990 {
			t.Fatalf("%s was not handed over", p)
		}
	}
}
