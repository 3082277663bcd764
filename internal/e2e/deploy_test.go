package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// deployProject makes a project folder with the web daemon, one
// aws-lambda-go bootstrap (the echoing lambdaapigw) and a deploy file.
func deployProject(t *testing.T, file, text string) string {
	t.Helper()
	dir := testutil.TempDir(t)
	for name, pkg := range map[string]string{"web": "./internal/testutil/workers/web", "bootstrap": "./internal/testutil/workers/lambdaapigw"} {
		b, err := os.ReadFile(testutil.BuildGo(t, pkg))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeDeployFile(t, filepath.Join(dir, file), text)
	return dir
}

func writeDeployFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// deployIn runs `dartup ARGS…` in dir against s, returning output and exit code.
func (s *server) deployIn(dir string, args ...string) (string, int) {
	out, err := s.tryIn(dir, args...)
	if ee, ok := err.(*exec.ExitError); ok {
		return out, ee.ExitCode()
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return out, 0
}

// call sends an HTTP request and returns status, Allow header and body.
func call(t *testing.T, method, url, body string) (int, string, string) {
	t.Helper()
	code, allow, resp := tryCall(method, url, body)
	if code == 0 {
		t.Fatalf("%s %s: %s", method, url, resp)
	}
	return code, allow, resp
}

// handlerOf calls a function route and returns the _HANDLER its bootstrap echoed.
func handlerOf(t *testing.T, method, url string) string {
	t.Helper()
	code, _, body := call(t, method, url, `{"name":"dart"}`)
	var echo struct {
		Handler string `json:"handler"`
		Method  string `json:"method"`
	}
	if code != 201 || json.Unmarshal([]byte(body), &echo) != nil || echo.Method != method {
		t.Fatalf("%s %s: %d %s", method, url, code, body)
	}
	return echo.Handler
}

func (s *server) versionOf(app string) (uint64, []int) {
	s.t.Helper()
	var ai clientsdk.AppInfo
	if err := json.Unmarshal([]byte(s.dartup("info", app, "--json")), &ai); err != nil {
		s.t.Fatal(err)
	}
	var pids []int
	for _, in := range ai.Summary.Instances {
		pids = append(pids, in.PID)
	}
	slices.Sort(pids)
	return ai.Spec.Version, pids
}

const shopYAML = `service: e2eshop
apps:
  dweb:
    artifact: ./web
    instances: 2
    http: [/]
    env: {WEB_VERSION: "1"}
functions:
  dhello:
    artifact: ./bootstrap
    handler: main.hello
    events:
      - http: {path: /hello, method: GET}
  dpost:
    artifact: ./bootstrap
    handler: main.postRequest
    events:
      - http: POST /postRequest
`

// TestDeployFile: a dartup.yaml with a daemon behind / and two functions
// sharing one bootstrap on GET /hello and POST /postRequest deploys; each
// route reaches its handler; deploying again changes nothing; a changed
// env value rolls only its app; --prune removes what left the file.
func TestDeployFile(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	dir := deployProject(t, "dartup.yaml", shopYAML)
	if out, code := s.deployIn(dir, "deploy"); code != 0 || !strings.Contains(out, "3 to create") || !strings.Contains(out, "Deployed: 3 created") {
		t.Fatalf("deploy: exit %d\n%s", code, out)
	}
	if h := handlerOf(t, "GET", s.httpURL+"/hello"); h != "main.hello" {
		t.Errorf("GET /hello reached handler %q", h)
	}
	if h := handlerOf(t, "POST", s.httpURL+"/postRequest"); h != "main.postRequest" {
		t.Errorf("POST /postRequest reached handler %q", h)
	}
	if code, allow, body := call(t, "POST", s.httpURL+"/hello", ""); code != 405 || allow != "GET" {
		t.Errorf("POST /hello: %d Allow %q %s", code, allow, body)
	}
	if code, _, body := call(t, "GET", s.httpURL+"/nothing/here", ""); code != 404 {
		t.Errorf("GET /nothing/here: %d %s", code, body)
	}
	if code, _, body := call(t, "GET", s.httpURL+"/", ""); code != 200 || !strings.HasPrefix(body, "version=1 ") {
		t.Errorf("GET / (the daemon): %d %s", code, body)
	}
	var hi, pi clientsdk.AppInfo
	_ = json.Unmarshal([]byte(s.dartup("info", "dhello", "--json")), &hi)
	_ = json.Unmarshal([]byte(s.dartup("info", "dpost", "--json")), &pi)
	if hi.Spec.Artifact == nil || pi.Spec.Artifact == nil || hi.Spec.Artifact.SHA256 != pi.Spec.Artifact.SHA256 {
		t.Errorf("the two functions do not share one artifact: %+v %+v", hi.Spec.Artifact, pi.Spec.Artifact)
	}

	webV, webPIDs := s.versionOf("dweb")
	out, code := s.deployIn(dir, "deploy")
	if code != 0 || !strings.Contains(out, "No changes: 3 apps are up to date.") {
		t.Fatalf("second deploy: exit %d\n%s", code, out)
	}
	if v, pids := s.versionOf("dweb"); v != webV || !slices.Equal(pids, webPIDs) {
		t.Errorf("an unchanged deploy touched dweb: version %d→%d, pids %v→%v", webV, v, webPIDs, pids)
	}

	writeDeployFile(t, filepath.Join(dir, "dartup.yaml"), strings.Replace(shopYAML, `WEB_VERSION: "1"`, `WEB_VERSION: "2"`, 1))
	out, code = s.deployIn(dir, "deploy")
	if code != 0 || !strings.Contains(out, "~ dweb") || !strings.Contains(out, "env.WEB_VERSION changed") || !strings.Contains(out, "1 updated") {
		t.Fatalf("deploy of a changed env: exit %d\n%s", code, out)
	}
	if v, _ := s.versionOf("dweb"); v != webV+1 {
		t.Errorf("dweb is at version %d after its env changed, want %d", v, webV+1)
	}
	for _, fn := range []string{"dhello", "dpost"} {
		if v, _ := s.versionOf(fn); v != 1 {
			t.Errorf("%s rolled (version %d) though only dweb changed", fn, v)
		}
	}
	if _, _, body := call(t, "GET", s.httpURL+"/", ""); !strings.HasPrefix(body, "version=2 ") {
		t.Errorf("GET / after the env change: %s", body)
	}

	// A hand-pushed app is never pruned; dpost, deleted from the file, is.
	s.dartup("push", "--name", "dhand", "--runtime", "command", "--", "/bin/sleep", "600")
	writeDeployFile(t, filepath.Join(dir, "dartup.yaml"), strings.Split(strings.Replace(shopYAML, `"1"`, `"2"`, 1), "  dpost:")[0])
	if out, code := s.deployIn(dir, "diff"); code != 0 || strings.Contains(out, "remove") {
		t.Fatalf("diff without --prune: exit %d\n%s", code, out)
	}
	out, code = s.deployIn(dir, "deploy", "--prune")
	if code != 0 || !strings.Contains(out, "- dpost") || !strings.Contains(out, "1 removed") || strings.Contains(out, "dhand") {
		t.Fatalf("deploy --prune: exit %d\n%s", code, out)
	}
	if _, code := s.exitCode("info", "dpost"); code == 0 {
		t.Error("dpost is still there after deploy --prune")
	}
	s.dartup("info", "dhand")

	// Another project that wants GET /hello is refused before anything of
	// it is created; one that names dweb (another service's) too.
	other := deployProject(t, "dartup.yaml", "service: e2eother\nfunctions:\n  ofirst:\n    artifact: ./bootstrap\n  ohello:\n    artifact: ./bootstrap\n    events: [http: GET /hello]\n")
	if out, code := s.deployIn(other, "deploy"); code != 1 || !strings.Contains(out, "ohello: route GET /hello is taken by lambda dhello") || !strings.Contains(out, "nothing was deployed") {
		t.Fatalf("deploy of a taken route: exit %d\n%s", code, out)
	}
	writeDeployFile(t, filepath.Join(other, "dartup.yaml"), "service: e2eother\napps:\n  dweb:\n    artifact: ./web\n")
	if out, code := s.deployIn(other, "deploy"); code != 2 || !strings.Contains(out, "belongs to service e2eshop") {
		t.Fatalf("deploy of another service's app: exit %d\n%s", code, out)
	}
	if _, code := s.exitCode("info", "ofirst"); code == 0 {
		t.Error("ofirst was created by a deploy that was refused")
	}
}

// TestDeployServerless deploys the seeds' serverless.yml (hello GET,
// postRequest POST) with the bootstrap given by --artifact.
func TestDeployServerless(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	dir := deployProject(t, "serverless.yml", `service: hello
provider:
  name: aws
  runtime: dart
  lambdaHashingVersion: 20201221
  memorySize: 128
package:
  individually: true
plugins:
  - serverless-dart
functions:
  hello:
    handler: main.hello
    events:
      - http:
          path: /hello
          method: GET
  postRequest:
    handler: main.postRequest
    events:
      - http:
          path: /postRequest
          method: POST
`)
	out, code := s.deployIn(dir, "deploy", "-f", "serverless.yml", "--artifact", "./bootstrap")
	if code != 0 || !strings.Contains(out, "ignored: plugins") || !strings.Contains(out, "Deployed: 2 created") {
		t.Fatalf("deploy -f serverless.yml: exit %d\n%s", code, out)
	}
	if h := handlerOf(t, "GET", s.httpURL+"/hello"); h != "main.hello" {
		t.Errorf("GET /hello reached handler %q", h)
	}
	if h := handlerOf(t, "POST", s.httpURL+"/postRequest"); h != "main.postRequest" {
		t.Errorf("POST /postRequest reached handler %q", h)
	}
}

// TestDeployBadFiles: problems are reported with file, line and field, and
// nothing is uploaded or changed.
func TestDeployBadFiles(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	dir := deployProject(t, "dartup.yaml", "apps:\n  bad1:\n    artifact: ./web\n    instanses: 2\n")
	for _, tc := range []struct{ text, want string }{
		{"apps:\n  bad1:\n    artifact: ./web\n    instanses: 2\n", "dartup.yaml:4: apps.bad1.instanses: unknown key \"instanses\" (did you mean instances?)"},
		{"apps:\n  bad1:\n    artifact: ./web\nfunctions:\n  bad2:\n    artifact: ./missing\n", "dartup.yaml:6: functions.bad2.artifact: ./missing does not exist"},
		{"apps:\n  bad1:\n    artifact: ./web\n    instances: -1\n", "dartup.yaml:4: apps.bad1.instances: must be >= 1"},
	} {
		writeDeployFile(t, filepath.Join(dir, "dartup.yaml"), tc.text)
		out, code := s.deployIn(dir, "deploy")
		if code != 2 || !strings.Contains(out, tc.want) || !strings.Contains(out, "nothing was deployed") {
			t.Errorf("exit %d, want 2 with %q:\n%s", code, tc.want, out)
		}
	}
	if apps := listJSON(t, s); len(apps) != 0 {
		t.Errorf("bad files left apps behind: %+v", apps)
	}
}

// TestFixedPortNoProbeGoesBack: a daemon on a fixed port without a
// readiness probe is replaced stop-first; a new version that exits before
// it has stayed up for min_uptime brings the version before back on the
// port, and push says the rollout failed.
func TestFixedPortNoProbeGoesBack(t *testing.T) {
	s := startServe(t, testutil.TempDir(t))
	web := testutil.BuildGo(t, "./internal/testutil/workers/web")
	port := strconv.Itoa(freePortRun(t, 1))
	s.dartup("push", "--name", "fixnoprobe", "--port", port, "--env", "WEB_VERSION=good", "--", web)
	testutil.WaitFor(t, 10*time.Second, "the first version to answer", func() bool {
		code, _, body := tryCall("GET", "http://127.0.0.1:"+port+"/", "")
		return code == 200 && strings.HasPrefix(body, "version=good ")
	})
	out, code := s.exitCode("push", "--name", "fixnoprobe", "--port", port, "--env", "WEB_VERSION=bad", "--env", "WEB_EXIT_AFTER=300ms", "--", web)
	if code == 0 || !strings.Contains(out, "did not get ready") {
		t.Fatalf("push of a version that exits after 300 ms: exit %d\n%s", code, out)
	}
	testutil.WaitFor(t, 10*time.Second, "the version before to answer on the port again", func() bool {
		code, _, body := tryCall("GET", "http://127.0.0.1:"+port+"/", "")
		return code == 200 && strings.HasPrefix(body, "version=good ")
	})
}

// tryCall sends an HTTP request and returns status, Allow header and body;
// a transport error is status 0 with the error as the body.
func tryCall(method, url, body string) (int, string, string) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Allow"), string(b)
}
