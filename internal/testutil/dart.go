package testutil

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/dartup/dartup/internal/dartsass"
)

// SassPackage is the npm package that carries a Dart AOT runtime and an
// AOT-compiled Dart program.
const SassPackage = dartsass.Package

var (
	dartOnce sync.Once
	dartDir  string
	dartErr  error
)

// DartSass returns the Dart AOT runtime (`dart`, a dartaotruntime) and the AOT
// snapshot `sass.snapshot` from the npm package sass-embedded-linux-x64. It
// looks in $DARTUP_SASS_DIR (a folder holding both, as .ci/run sets), then in
// the user cache, and otherwise fetches the package there with `npm pack`
// (see dartsass.Find; as root, a copy others can run, see dartsass.Shared).
// Without npm it skips the test (fails in CI).
func DartSass(t testing.TB) (dart, snapshot string) {
	t.Helper()
	dartOnce.Do(func() {
		if dartDir, dartErr = dartsass.Find(); dartErr == nil {
			dartDir, dartErr = dartsass.Shared(dartDir)
		}
	})
	if dartErr != nil {
		SkipOrFail(t, "the real Dart runtime is not available: %v", dartErr)
	}
	return filepath.Join(dartDir, "dart"), filepath.Join(dartDir, "sass.snapshot")
}
