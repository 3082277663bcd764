package clientsdk_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

func connect(t *testing.T) *clientsdk.Client {
	t.Helper()
	b := testutil.StartBroker(t)
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func wantCode(t *testing.T, err error, code int, contains string) {
	t.Helper()
	e, ok := clientsdk.AsError(err)
	if !ok || e.Code != code || !strings.Contains(e.Message, contains) {
		t.Fatalf("got %v, want *Error %d containing %q", err, code, contains)
	}
}

func TestPushBadInput(t *testing.T) {
	c := connect(t)
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	dir := testutil.TempDir(t)
	empty := filepath.Join(dir, "empty")
	text := filepath.Join(dir, "script.txt")
	_ = os.WriteFile(empty, nil, 0o755)
	_ = os.WriteFile(text, []byte("echo hi\n"), 0o644)
	ctx := context.Background()
	for _, name := range []string{"a.b", "*", ">", "has space", "", strings.Repeat("x", 300), "-lead", "tab\t"} {
		t.Run("name "+fmt.Sprintf("%q", name), func(t *testing.T) {
			_, err := c.Push(ctx, clientsdk.AppSpec{Name: name}, worker, nil)
			wantCode(t, err, 400, "app name")
		})
	}
	cases := []struct {
		name, file string
		rt         clientsdk.Runtime
		code       int
		contains   string
	}{
		{"missing file", filepath.Join(dir, "nope"), "", 400, "does not exist"},
		{"folder without --entry", dir, "", 400, "give the program to run inside it with --entry"},
		{"zero bytes", empty, "", 400, "empty"},
		{"not an executable", text, "", 400, "not an ELF executable"},
		{"non-executable as exe", text, clientsdk.RuntimeExe, 400, "not executable"},
		{"command with a file", worker, clientsdk.RuntimeCommand, 400, "takes no file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Push(ctx, clientsdk.AppSpec{Name: "app", Runtime: tc.rt}, tc.file, nil)
			wantCode(t, err, tc.code, tc.contains)
		})
	}
	// A spec that skips the client checks is still refused by the server.
	raw := clientsdk.AppSpec{Name: "ghost", Runtime: clientsdk.RuntimeExe, Artifact: &clientsdk.ArtifactRef{
		Object: clientsdk.ArtifactObjectName(strings.Repeat("ab", 32)), SHA256: strings.Repeat("ab", 32), Size: 10}}
	_, err := c.Push(ctx, clientsdk.AppSpec{Name: "ghost", Runtime: clientsdk.RuntimeCommand, Command: []string{""}}, "", nil)
	wantCode(t, err, 400, "command line")
	var out clientsdk.AppSpec
	_ = out
	msg, err := c.Conn().Request(clientsdk.APISubject(clientsdk.VerbPush), mustJSON(raw), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, clientsdk.ErrorFromMsg(msg), 400, "not in the object store")
	if apps, err := c.List(ctx); err != nil || len(apps) != 0 {
		t.Fatalf("bad pushes left apps behind: %+v %v", apps, err)
	}
}

func TestDuplicatePushesRacing(t *testing.T) {
	c := connect(t)
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	base, err := os.ReadFile(worker)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	files := make([]string, n)
	for i := range files {
		files[i] = filepath.Join(testutil.TempDir(t), "w")
		// Each variant has a distinct digest (trailing bytes do not change an ELF's behaviour).
		if err := os.WriteFile(files[i], append(append([]byte{}, base...), []byte(fmt.Sprintf("variant-%d", i))...), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	specs := make([]*clientsdk.AppSpec, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			specs[i], errs[i] = c.Push(context.Background(), clientsdk.AppSpec{Name: "race", Runtime: clientsdk.RuntimeExe}, files[i], nil)
		}()
	}
	wg.Wait()
	digests := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("push %d: %v", i, errs[i])
		}
		digests[specs[i].Artifact.SHA256] = true
	}
	if len(digests) != n {
		t.Fatalf("want %d distinct digests, got %d", n, len(digests))
	}
	info, err := c.Describe(context.Background(), "race")
	if err != nil {
		t.Fatal(err)
	}
	if !digests[info.Spec.Artifact.SHA256] {
		t.Fatalf("the stored spec points at an artifact nobody pushed: %s", info.Spec.Artifact.SHA256)
	}
	if len(info.Versions) < 8 {
		t.Fatalf("want every push kept in the spec history (≥8 versions), got %d", len(info.Versions))
	}
	// Every pushed artifact is stored, whole.
	js, _ := jetstream.New(c.Conn())
	obj, _ := js.ObjectStore(context.Background(), clientsdk.ArtifactsBucket)
	for d := range digests {
		oi, err := obj.GetInfo(context.Background(), clientsdk.ArtifactObjectName(d))
		if err != nil || oi.Size != uint64(len(base)+len("variant-0")) {
			t.Fatalf("artifact %s: %+v %v", d[:12], oi, err)
		}
	}
}

func TestDetectRuntime(t *testing.T) {
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	if rt, err := clientsdk.DetectRuntime(worker); err != nil || rt != clientsdk.RuntimeExe {
		t.Fatalf("Go binary: %s %v", rt, err)
	}
	if rt, err := clientsdk.DetectRuntime("/bin/sh"); err != nil || rt != clientsdk.RuntimeExe {
		t.Fatalf("/bin/sh: %s %v", rt, err)
	}
	dill := filepath.Join(testutil.TempDir(t), "app.dill")
	_ = os.WriteFile(dill, []byte{0x90, 0xab, 0xcd, 0xef, 1, 2}, 0o644)
	if rt, err := clientsdk.DetectRuntime(dill); err != nil || rt != clientsdk.RuntimeKernel {
		t.Fatalf(".dill: %s %v", rt, err)
	}
	dir := testutil.TempDir(t)
	for name, c := range map[string]struct {
		body string
		bad  string
	}{
		"env.py":   {body: "#!/usr/bin/env python3\nprint(1)\n"},
		"sh.sh":    {body: "#!/bin/sh -e\necho\n"},
		"rel.sh":   {body: "#!sh\necho\n", bad: "absolute interpreter"},
		"empty.sh": {body: "#! \n\n", bad: "absolute interpreter"},
		"long.sh":  {body: "#!/bin/" + strings.Repeat("x", 300) + "\n", bad: "longer than the 256 bytes"},
		"text.txt": {body: "hello world\n", bad: "#! line"},
	} {
		path := filepath.Join(dir, name)
		_ = os.WriteFile(path, []byte(c.body), 0o644)
		rt, err := clientsdk.DetectRuntime(path)
		switch {
		case c.bad == "" && (err != nil || rt != clientsdk.RuntimeExe):
			t.Errorf("%s: %s %v, want exe", name, rt, err)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%s: %s %v, want an error with %q", name, rt, err, c.bad)
		}
	}
	_, snapshot := testutil.DartSass(t)
	if rt, err := clientsdk.DetectRuntime(snapshot); err != nil || rt != clientsdk.RuntimeAOT {
		t.Fatalf("sass.snapshot: %s %v", rt, err)
	}
}

// Apps pushing the same bytes share one artifact, which stays while any of
// them (or a revision in their history) uses it.
func TestArtifactsAreSharedByContent(t *testing.T) {
	c := connect(t)
	worker := testutil.BuildGo(t, "./internal/testutil/workers/daemon")
	ctx := context.Background()
	a, err := c.Push(ctx, clientsdk.AppSpec{Name: "one", Runtime: clientsdk.RuntimeExe, Restart: clientsdk.RestartPolicy{NoAutoRestart: true}}, worker, nil)
	if err != nil {
		t.Fatal(err)
	}
	uploads := 0
	b, err := c.Push(ctx, clientsdk.AppSpec{Name: "two", Runtime: clientsdk.RuntimeExe, Restart: clientsdk.RestartPolicy{NoAutoRestart: true}}, worker, func(sent, total int64) { uploads++ })
	if err != nil {
		t.Fatal(err)
	}
	if a.Artifact.Object != b.Artifact.Object || uploads != 1 {
		t.Fatalf("same bytes, objects %s and %s, %d progress calls (want 1: nothing uploaded)", a.Artifact.Object, b.Artifact.Object, uploads)
	}
	js, _ := jetstream.New(c.Conn())
	obj, _ := js.ObjectStore(ctx, clientsdk.ArtifactsBucket)
	count := func() int {
		l, _ := obj.List(ctx)
		return len(l)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d objects stored for one binary", n)
	}
	if err := c.Remove(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("removing one app deleted the artifact the other uses (%d objects)", n)
	}
	if err := c.Remove(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d objects left after removing every app", n)
	}
}

func TestTokenFrom(t *testing.T) {
	for in, want := range map[string]string{
		"web":                    "web",
		"my.host.local":          "my-host-local",
		"-_x y":                  "x-y",
		"...":                    "fallback",
		"":                       "fallback",
		strings.Repeat("a", 100): strings.Repeat("a", clientsdk.MaxNameLength),
	} {
		got := clientsdk.TokenFrom(in, "fallback")
		if got != want || clientsdk.ValidateName(got) != nil {
			t.Errorf("TokenFrom(%q) = %q, want %q (a valid name)", in, got, want)
		}
	}
}
