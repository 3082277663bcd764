// Package dart_test checks the Dart code of the dartup Dart package and of
// examples/ mechanically: no Dart compiler can be installed on dartup's
// machines, so every .dart file is parsed with the tree-sitter Dart grammar
// (tool/check_syntax.mjs, run by node). The wire exchanges the Dart code
// performs are written down in docs/protocol.md.
package dart_test

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/internal/testutil"
)

// tool returns the folder of check_syntax.mjs with its npm packages
// installed, and the node binary; it skips (fails in CI) without npm/node.
func tool(t *testing.T) (dir, node string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testutil.SkipOrFail(t, "node is not on PATH: the Dart syntax check runs on node")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		testutil.SkipOrFail(t, "npm is not on PATH: the Dart syntax check needs web-tree-sitter and tree-sitter-dart from npm")
	}
	dir = filepath.Join(testutil.RepoRoot(t), "clientsdk", "dart", "tool")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		testutil.SkipOrFail(t, "npm install in %s: %v\n%s", dir, err, out)
	}
	return dir, node
}

// check runs check_syntax.mjs on args and returns its output and exit code.
func check(t *testing.T, dir, node string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{filepath.Join(dir, "check_syntax.mjs")}, args...)...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err == nil {
		return string(out), 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	t.Fatalf("run check_syntax.mjs: %v\n%s", err, out)
	return "", -1
}

// dartFiles counts the .dart files under root the way check_syntax.mjs
// walks (skipping node_modules, .dart_tool, build and dot folders).
func dartFiles(t *testing.T, root string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (name == "node_modules" || name == ".dart_tool" || name == "build" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".dart") {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var parsedRe = regexp.MustCompile(`parsed (\d+) \.dart files with tree-sitter-dart: (\d+) syntax error`)

func TestDartSourcesParse(t *testing.T) {
	dir, node := tool(t)
	root := testutil.RepoRoot(t)
	want := dartFiles(t, filepath.Join(root, "clientsdk", "dart")) + dartFiles(t, filepath.Join(root, "examples"))
	if want < 10 {
		t.Fatalf("found only %d .dart files in clientsdk/dart and examples/; expected the package and the examples", want)
	}
	out, code := check(t, dir, node)
	if code != 0 {
		t.Fatalf("Dart syntax errors (exit %d):\n%s", code, out)
	}
	m := parsedRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line in:\n%s", out)
	}
	if got, _ := strconv.Atoi(m[1]); got != want {
		t.Fatalf("check_syntax.mjs parsed %d files, the tree holds %d:\n%s", got, want, out)
	}
	t.Logf("%s", strings.TrimSpace(out))
}

// TestDartSyntaxCheckCatchesErrors proves the check is not vacuous: broken
// files fail it with FILE:LINE:COL, and valid Dart 3 code passes.
func TestDartSyntaxCheckCatchesErrors(t *testing.T) {
	dir, node := tool(t)
	cases := []struct {
		name, src, want string
		code            int
	}{
		{"missing semicolon", "void main() {\n  print('x')\n}\n", "bad.dart:2:13: missing \";\"", 1},
		{"unclosed parameter list", "class A {\n  void f( {\n}\n", "bad.dart:2:", 1},
		{"stray token", "void main() {\n  var = 3;\n}\n", "bad.dart:2:", 1},
		{"unterminated string", "void main() {\n  print('x);\n}\n", "bad.dart:", 1},
		{"valid Dart 3", `sealed class Shape {}
final class Circle extends Shape { Circle(this.r); final double r; }
(int, String) pair() => (1, 'a');
double area(Shape s) => switch (s) { Circle(r: var r) => 3.14 * r * r };
void main() async {
  final (a, b) = pair();
  if ({'x': a} case {'x': int x}) print('$x $b');
  switch (a) {
    case 1:
      final y = 2;
      print(y);
    default:
      print(area(Circle(1)));
  }
}
`, "0 syntax error(s)", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.dart")
			if err := os.WriteFile(p, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := check(t, dir, node, p)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}
