package deploy

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoad: any file content gives a project or a *FileError (or a read
// error), never a panic or a hang; a loaded project's specs pass the
// server's own validation once their artifacts are filled in.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{"testdata/dartup.yaml", "testdata/serverless.yml"} {
		b, err := os.ReadFile(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), filepath.Base(seed))
	}
	f.Add("apps:\n  a: &x {artifact: ./web}\n  b: *x\n", "dartup.yaml")
	f.Add("functions: {f: {command: [x], events: [http: GET /a/{id}]}}\n", "dartup.yaml")
	dir := f.TempDir()
	for _, name := range []string{"web", "bootstrap"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, text, name string) {
		if name != "serverless.yml" {
			name = "dartup.yaml"
		}
		path := filepath.Join(dir, name) // beside ./web and ./bootstrap
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		type result struct {
			p   *Project
			err error
		}
		done := make(chan result, 1)
		go func() {
			p, err := Load(path, Options{Getenv: func(string) (string, bool) { return "1", true }, Artifact: filepath.Join(dir, "bootstrap")})
			done <- result{p, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Load did not return within 5s on %q", text)
		}
		p, err := r.p, r.err
		if err != nil {
			return
		}
		for _, e := range p.Entries {
			s := e.Spec.WithDefaults()
			if err := s.ValidateBounds(); err != nil {
				t.Fatalf("loaded %s, which the server refuses: %v", e.Spec.Name, err)
			}
		}
	})
}
