package runner

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

// tarGz writes entries (name → content; a name ending in "/" is a folder,
// "->" in a content a symlink) as a gzip'd tar file and returns its path.
func tarGz(t *testing.T, entries [][2]string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e[1]))}
		switch {
		case strings.HasSuffix(e[0], "/"):
			h.Typeflag, h.Size = tar.TypeDir, 0
		case strings.HasPrefix(e[1], "->"):
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, e[1][2:]
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(e[1]))
		}
	}
	_ = tw.Close()
	_ = zw.Close()
	p := filepath.Join(t.TempDir(), "b.tar.gz")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A bundle unpacks to its files; names that leave the folder, links and
// special files are refused and leave nothing behind.
func TestExposeBundle(t *testing.T) {
	root := t.TempDir()
	dir, err := exposeBundle(root, "site", "d1", tarGz(t, [][2]string{{"public/", ""}, {"public/a.txt", "A"}, {"bin/run", "#!/bin/sh\n"}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "public", "a.txt")); err != nil || string(b) != "A" {
		t.Fatalf("unpacked public/a.txt: %q %v", b, err)
	}
	for name, entries := range map[string][][2]string{
		"parent":   {{"../evil", "x"}},
		"absolute": {{"/etc/evil", "x"}},
		"deep":     {{"a/../../evil", "x"}},
		"symlink":  {{"link", "->/etc/passwd"}},
	} {
		_, err := exposeBundle(root, "bad", name, tarGz(t, entries), nil)
		if err == nil {
			t.Errorf("%s: unpacked", name)
		}
		if _, serr := os.Stat(filepath.Join(root, ".artifacts", "bad", name, "bad")); serr == nil {
			t.Errorf("%s: left a folder behind", name)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "evil")); err == nil {
		t.Fatal("a bundle wrote outside its folder")
	}
	// The folder a push makes unpacks to the same files.
	src := t.TempDir()
	_ = os.MkdirAll(filepath.Join(src, "x", "y"), 0o755)
	_ = os.WriteFile(filepath.Join(src, "x", "y", "f"), []byte("F"), 0o755)
	var b bytes.Buffer
	if err := clientsdk.WriteBundle(src, "", &b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "w.tar.gz")
	_ = os.WriteFile(p, b.Bytes(), 0o600)
	dir, err = exposeBundle(root, "w", "d2", p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "x", "y", "f")); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("x/y/f: %v %v (want executable)", st, err)
	}
}
