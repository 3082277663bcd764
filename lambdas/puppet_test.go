package lambdas_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/dartup/dartup/lambdas"
)

// deployPuppet deploys s with a real worker process that never calls the
// Runtime API itself (a shell that writes its AWS_LAMBDA_RUNTIME_API to a
// file, then sleeps): the test plays its runtime. It returns the file,
// written once the first invocation has started the worker.
func (r *rig) deployPuppet(s clientsdk.AppSpec) string {
	r.t.Helper()
	apiFile := filepath.Join(r.t.TempDir(), "api")
	err := r.deploy(s, lambdas.Command{Path: "/bin/sh", Env: []string{"API_FILE=" + apiFile},
		Args: []string{"-c", `printf %s "$AWS_LAMBDA_RUNTIME_API" > "$API_FILE.tmp" && mv "$API_FILE.tmp" "$API_FILE" && exec sleep 86400`}})
	if err != nil {
		r.t.Fatal(err)
	}
	return apiFile
}

// runtimeStatuses are the statuses the Runtime API answers (docs/lambdas.md):
// 200 next, 202 accepted, 400 unknown request id, 403 wrong state, 404
// unknown worker or route (also an unclean path), 410 worker stopping, 413
// response too large, 429 too many connections for one worker.
var runtimeStatuses = []int{200, 202, 400, 403, 404, 410, 413, 429}

// workerBase returns the worker's Runtime API base URL, once its process
// has written it.
func workerBase(t *testing.T, apiFile string) string {
	var b []byte
	testutil.WaitFor(t, 10*time.Second, "the worker to start", func() bool {
		var err error
		b, err = os.ReadFile(apiFile)
		return err == nil && len(b) > 0
	})
	return "http://" + string(b) + "/2018-06-01/runtime/"
}

// getNext does GET …/invocation/next and checks that it hands out event.
func getNext(t *testing.T, base string, event []byte) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"invocation/next", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET next: %v", err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	id := resp.Header.Get(lambdas.HeaderRequestID)
	if _, err := strconv.ParseInt(resp.Header.Get(lambdas.HeaderDeadlineMs), 10, 64); resp.StatusCode != 200 || id == "" || err != nil {
		t.Fatalf("GET next: %d, request id %q, deadline %q: %s", resp.StatusCode, id, resp.Header.Get(lambdas.HeaderDeadlineMs), got)
	}
	if !bytes.Equal(got, event) {
		t.Fatalf("GET next handed out %q, the event was %q", got, event)
	}
	return id
}

// doChecked sends req and checks the status is documented and an error
// answer is AWS's {"errorMessage","errorType"}.
func doChecked(t *testing.T, req *http.Request) int {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !slices.Contains(runtimeStatuses, resp.StatusCode) {
		t.Fatalf("%s %s: undocumented status %d: %s", req.Method, req.URL, resp.StatusCode, b)
	}
	if resp.StatusCode >= 400 {
		var e struct{ ErrorMessage, ErrorType string }
		if json.Unmarshal(b, &e) != nil || e.ErrorMessage == "" || e.ErrorType == "" {
			t.Fatalf("%s %s: %d with body %q, not an AWS error body", req.Method, req.URL, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}
