package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// TestPushScript pushes a shell script with a #! line like any artifact: it
// runs through its interpreter, and after its local file is deleted and the
// app restarted it still runs, from the uploaded copy.
func TestPushScript(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	script := filepath.Join(testutil.TempDir(t), "shebangapp.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"shebang script started\"\nexec sleep 600\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := s.exitCode("push", script); code != 0 || !strings.Contains(out, "shebangapp") {
		t.Fatalf("push of a script: exit %d\n%s", code, out)
	}
	if err := os.Remove(script); err != nil {
		t.Fatal(err)
	}
	before := listJSON(t, s)["shebangapp"]
	if out, code := s.exitCode("restart", "shebangapp"); code != 0 {
		t.Fatalf("restart: exit %d\n%s", code, out)
	}
	testutil.WaitFor(t, 20*time.Second, "the script running again under a new pid", func() bool {
		a := listJSON(t, s)["shebangapp"]
		return a.State == clientsdk.AppAlive && len(a.Instances) == 1 && len(before.Instances) == 1 && a.Instances[0].PID != before.Instances[0].PID
	})
	testutil.WaitFor(t, 10*time.Second, "both starts in the logs", func() bool {
		return strings.Count(s.dartup("logs", "shebangapp", "--lines", "10"), "shebang script started") == 2
	})
	// Another file whose name gives the same app name does not replace it
	// by accident; as a lambda neither; --force does.
	other := filepath.Join(testutil.TempDir(t), "shebangapp")
	if err := os.WriteFile(other, []byte("#!/bin/sh\nexec sleep 601\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"push", other}, {"push", "--lambda", other}} {
		if out, code := s.exitCode(args...); code != 2 || !strings.Contains(out, "an app named shebangapp already runs: a daemon from shebangapp.sh") {
			t.Fatalf("dartup %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	if out, code := s.exitCode("push", "--force", other); code != 0 {
		t.Fatalf("push --force: exit %d\n%s", code, out)
	}
	// A #! line without an absolute interpreter is refused before upload.
	bad := filepath.Join(testutil.TempDir(t), "bad.sh")
	if err := os.WriteFile(bad, []byte("#!sh\necho\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, code := s.exitCode("push", bad); code == 0 || !strings.Contains(out, "absolute interpreter") {
		t.Fatalf("push of a script without an absolute #!: exit %d\n%s", code, out)
	}
}

// TestRelativePathsAndCwd: a relative path to a local file in a command
// line is refused with the hint (it would name nothing on the node); with
// --cwd the app runs in that directory.
func TestRelativePathsAndCwd(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	dir := testutil.TempDir(t)
	if err := os.WriteFile(filepath.Join(dir, "cwdfile.txt"), []byte("found-by-cwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.Dartup(t), "push", "--name", "relpath", "--runtime", "command", "--", "/bin/cat", "cwdfile.txt")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DARTUP_URL="+s.natsURL)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "cwdfile.txt is a relative path to a file here") || !strings.Contains(string(out), "--cwd") {
		t.Fatalf("a relative path to a local file: %v\n%s", err, out)
	}
	if _, ok := listJSON(t, s)["relpath"]; ok {
		t.Fatal("the refused push left an app")
	}
	if out, code := s.exitCode("push", "--name", "cwdapp", "--cwd", dir, "--runtime", "command", "--", "/bin/sh", "-c", "cat cwdfile.txt; echo; exec sleep 600"); code != 0 {
		t.Fatalf("push --cwd: exit %d\n%s", code, out)
	}
	testutil.WaitFor(t, 10*time.Second, "the app to read its file through --cwd", func() bool {
		return strings.Contains(s.dartup("logs", "cwdapp", "--lines", "5"), "found-by-cwd")
	})
}

// TestLogsLikePM2: logs without NAME prints every app's lines after
// APP.INSTANCE; --lines 0 prints no history; --json is one object per line;
// apps' lines are in serve's own log only with --log-apps.
func TestLogsLikePM2(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	for _, app := range []string{"logsa", "logsb"} {
		s.dartup("push", "--name", app, "--runtime", "command", "--", "/bin/sh", "-c", "echo hello-"+app+"; echo oops-"+app+" >&2; exec sleep 600")
	}
	testutil.WaitFor(t, 10*time.Second, "both apps' lines in `logs`", func() bool {
		out := s.dartup("logs", "--lines", "all")
		return strings.Contains(out, "logsa.0 | hello-logsa\n") && strings.Contains(out, "logsb.0 | hello-logsb\n") && strings.Contains(out, "logsb.0 err | oops-logsb\n")
	})
	if out := s.dartup("logs", "logsa", "--lines", "0"); out != "" {
		t.Fatalf("--lines 0 printed history: %q", out)
	}
	if strings.Contains(s.log.String(), "hello-logsa") {
		t.Fatal("an app's output is in serve's own log without --log-apps")
	}
	s2 := startServe(t, testutil.TempDir(t), "--log-apps")
	s2.dartup("push", "--name", "logsc", "--runtime", "command", "--", "/bin/sh", "-c", "echo hello-logsc; exec sleep 600")
	testutil.WaitFor(t, 10*time.Second, "the app's output in serve's log with --log-apps", func() bool {
		return strings.Contains(s2.log.String(), "hello-logsc")
	})
	out := s.dartup("logs", "logsb", "--json")
	outputs := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ll clientsdk.LogLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil || ll.App != "logsb" || ll.Time.IsZero() {
			t.Fatalf("--json line %q: %+v %v", l, ll, err)
		}
		if ll.Stream != clientsdk.StreamEvent {
			outputs++
		}
	}
	if outputs != 2 {
		t.Fatalf("--json printed %d output lines, want 2:\n%s", outputs, out)
	}
	// Lifecycle events come in their place; a crash and its restart too.
	_, _ = s.exitCode("push", "--name", "logsd", "--runtime", "command", "--", "/bin/sh", "-c", "echo up; sleep 0.3; exit 3") // a crash loop: exit 1
	testutil.WaitFor(t, 15*time.Second, "logsd's crash and restart among its lines", func() bool {
		out := s.dartup("logs", "logsd", "--lines", "all")
		return strings.Contains(out, "logsd.0 | -- crashed: exit code 3") && strings.Contains(out, "logsd.0 | -- restarted: restart 1 --")
	})
	if out, code := s.exitCode("logs", "--lines", "some"); code != 2 || !strings.Contains(out, "--lines is a number of lines or all") {
		t.Fatalf("--lines some: exit %d\n%s", code, out)
	}
}

// TestWorkersNamedAfterApps: a pushed executable runs under its app's name
// (ps and top show it), not as a cache file named by its digest.
func TestWorkersNamedAfterApps(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	s.dartup("push", "--name", "psnamed", "--env", "WORKER_MODE=run", worker)
	var pid int
	testutil.WaitFor(t, 10*time.Second, "psnamed running", func() bool {
		a := listJSON(t, s)["psnamed"]
		if len(a.Instances) == 1 && a.Instances[0].State == clientsdk.StateRunning {
			pid = a.Instances[0].PID
		}
		return pid > 0
	})
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	if strings.TrimSpace(string(comm)) != "psnamed" || filepath.Base(argv0) != "psnamed" {
		t.Fatalf("the worker shows as comm %q, argv[0] %q; want the app's name", comm, argv0)
	}
}

// TestPushFolder pushes a folder with --entry: it is uploaded as one bundle,
// unpacked on the node, and its entry serves a file of its public/ (the
// folder is its working directory). Pushing the same folder again uploads
// nothing new (the same digest).
func TestPushFolder(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	site := filepath.Join(testutil.TempDir(t), "site")
	web := testutil.BuildGo(t, "./internal/testutil/workers/web")
	for _, d := range []string{"bin", "public/css"} {
		if err := os.MkdirAll(filepath.Join(site, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(web)
	if err != nil {
		t.Fatal(err)
	}
	// Not executable here (as from a Windows client): the entry is made so.
	if err := os.WriteFile(filepath.Join(site, "bin", "server"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "public", "css", "site.css"), []byte("body { color: teal }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := s.exitCode("push", "--name", "folderweb", "--http", "/", site, "--entry", "bin/server"); code != 0 {
		t.Fatalf("push of a folder: exit %d\n%s", code, out)
	}
	if body := get(t, s.httpURL+"/public/css/site.css"); body != "body { color: teal }\n" {
		t.Fatalf("GET /public/css/site.css = %q", body)
	}
	var ai clientsdk.AppInfo
	if err := json.Unmarshal([]byte(s.dartup("info", "folderweb", "--json")), &ai); err != nil {
		t.Fatal(err)
	}
	if ai.Spec.Bundle == nil || ai.Spec.Bundle.Entry != "bin/server" || ai.Spec.Runtime != clientsdk.RuntimeExe || ai.Spec.Artifact.FileName != "site/" {
		t.Fatalf("the stored spec: bundle %+v runtime %s artifact %+v", ai.Spec.Bundle, ai.Spec.Runtime, ai.Spec.Artifact)
	}
	// The same folder again, through a symbolic link, packs to the same
	// bytes: the same digest.
	link := filepath.Join(testutil.TempDir(t), "sitelink")
	if err := os.Symlink(site, link); err != nil {
		t.Fatal(err)
	}
	if out, code := s.exitCode("push", "--name", "folderweb2", "--http", "/two", link, "--entry", "bin/server"); code != 0 {
		t.Fatalf("second push of the folder: exit %d\n%s", code, out)
	}
	var ai2 clientsdk.AppInfo
	if err := json.Unmarshal([]byte(s.dartup("info", "folderweb2", "--json")), &ai2); err != nil || ai2.Spec.Artifact.SHA256 != ai.Spec.Artifact.SHA256 {
		t.Fatalf("the same folder packed to another digest: %v %s vs %s", err, ai2.Spec.Artifact.SHA256, ai.Spec.Artifact.SHA256)
	}
	// `push .` inside the folder takes the folder's name.
	dot := exec.Command(testutil.Dartup(t), "push", ".", "--entry", "bin/server", "--http", "/three")
	dot.Dir, dot.Env = site, append(os.Environ(), "DARTUP_URL="+s.natsURL)
	if out, err := dot.CombinedOutput(); err != nil || !strings.Contains(string(out), "site - alive") {
		t.Fatalf("push . in the folder: %v\n%s", err, out)
	}
	if out, code := s.exitCode("push", "--name", "nofolder", site); code == 0 || !strings.Contains(out, "--entry") {
		t.Fatalf("a folder without --entry: exit %d\n%s", code, out)
	}
}

// TestLogsFollowSurvivesRestart: `logs -f` keeps printing across a restart
// of the server, and prints every stored line once: none lost, none twice.
func TestLogsFollowSurvivesRestart(t *testing.T) {
	dir := testutil.TempDir(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	s := startServeAt(t, dir, addr)
	s.dartup("push", "--name", "followme", "--runtime", "command", "--", "/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo line-$i; sleep 0.05; done")
	follow := exec.Command(testutil.Dartup(t), "logs", "followme", "-f", "--lines", "0", "--json", "--events=false")
	follow.Env = append(os.Environ(), "DARTUP_URL="+s.natsURL)
	var out testutil.SyncBuffer
	follow.Stdout = &out
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follow.Process.Kill(); _, _ = follow.Process.Wait() }()
	testutil.WaitFor(t, 10*time.Second, "followed lines", func() bool { return strings.Count(out.String(), "\n") >= 5 })
	s.stop()
	s = startServeAt(t, dir, addr)
	before := strings.Count(out.String(), "\n")
	testutil.WaitFor(t, 30*time.Second, "lines after the restart", func() bool { return strings.Count(out.String(), "\n") >= before+10 })
	_ = follow.Process.Kill()
	_, _ = follow.Process.Wait()

	var followed []clientsdk.LogLine
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ll clientsdk.LogLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("followed line %q: %v", l, err)
		}
		followed = append(followed, ll)
	}
	var stored []clientsdk.LogLine
	for _, l := range strings.Split(strings.TrimSpace(s.dartup("logs", "followme", "--lines", "all", "--json", "--events=false")), "\n") {
		var ll clientsdk.LogLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, ll)
	}
	// The followed lines are a run of the stored ones, in order, whole.
	start := slices.IndexFunc(stored, func(l clientsdk.LogLine) bool { return l.Time.Equal(followed[0].Time) && l.Line == followed[0].Line })
	if start < 0 || start+len(followed) > len(stored) {
		t.Fatalf("the first followed line %+v is not in the stream (%d lines)", followed[0], len(stored))
	}
	for i, f := range followed {
		if st := stored[start+i]; !st.Time.Equal(f.Time) || st.Line != f.Line {
			t.Fatalf("followed line %d is %+v, the stream has %+v there (lost or repeated lines)", i, f, st)
		}
	}
}

// TestInvokeWithoutData: invoke NAME with no --data sends {} (as the AWS CLI
// does), which a typed aws-lambda-go handler takes; an empty event is
// still there with --data ”.
func TestInvokeWithoutData(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	bootstrap := testutil.BuildGo(t, "./internal/testutil/workers/lambdaevent")
	s.dartup("push", "--lambda", "--name", "seeevent", bootstrap)
	if out := s.dartup("invoke", "seeevent"); !strings.Contains(out, `"event":{}`) {
		t.Fatalf("invoke without --data: %q, want the event {}", out)
	}
	if out, _ := s.exitCode("invoke", "seeevent", "--data", ""); strings.Contains(out, `"event":{}`) {
		t.Fatalf("invoke --data '' sent {}: %q", out)
	}
}

// TestAllApps: kill, start and restart take "all", as PM2's stop/start/
// restart all do.
func TestAllApps(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	for _, app := range []string{"alla", "allb"} {
		s.dartup("push", "--name", app, "--runtime", "command", "--", "/bin/sleep", "600")
	}
	state := func() (string, string) {
		apps := listJSON(t, s)
		return string(apps["alla"].State), string(apps["allb"].State)
	}
	s.dartup("kill", "all")
	if a, b := state(); a != string(clientsdk.AppDead) || b != string(clientsdk.AppDead) {
		t.Fatalf("after kill all: %s %s", a, b)
	}
	s.dartup("start", "all")
	if a, b := state(); a != string(clientsdk.AppAlive) || b != string(clientsdk.AppAlive) {
		t.Fatalf("after start all: %s %s", a, b)
	}
	before := listJSON(t, s)
	s.dartup("restart", "all")
	after := listJSON(t, s)
	for _, app := range []string{"alla", "allb"} {
		if after[app].Instances[0].PID == before[app].Instances[0].PID {
			t.Errorf("%s kept pid %d across restart all", app, after[app].Instances[0].PID)
		}
	}
}
