// Package version holds dartup's version, set at build time with
// -ldflags "-X github.com/dartup/dartup/internal/version.Version=1.2.3".
package version

import "runtime/debug"

// Version is dartup's release version.
var Version = "0.1.0-dev"

// Commit returns the VCS revision the binary was built from, or "" when unknown.
func Commit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}
