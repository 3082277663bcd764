// Package termquiet keeps dartup from querying the terminal each time it
// starts. bubbletea v1 (which `dartup top` uses) asks lipgloss for the
// terminal's background colour in its package init, and termenv then
// writes "ESC ] 11 ; ? ESC \" and "ESC [ 6 n" to a terminal standard output
// and waits up to 5 s, in raw mode, for the answers: every dartup command
// (list, logs, push, --version) was 5 s late in a terminal that answers
// neither (ssh -t from a script, script(1), expect) and left the queries'
// bytes in its output, and in any terminal it ate keys typed ahead.
//
// Its init sets TERM=dumb, under which termenv does not query, and main
// calls Restore first thing. Go initialises packages in import-path order
// among those whose imports are done (the language spec, since Go 1.21):
// this package needs only syscall, and its path sorts before "os", which
// bubbletea needs, so this init runs before bubbletea's. termenv's default
// output, made in its own init, keeps the no-colour profile it sees then:
// use a renderer of your own (lipgloss.NewRenderer), as dartup top does.
package termquiet

import "syscall"

// saved is TERM as dartup was started with it.
var saved, had = syscall.Getenv("TERM")

func init() {
	_ = syscall.Setenv("TERM", "dumb")
}

// Restore puts TERM back as dartup was started with it (unset if it was).
func Restore() {
	if had {
		_ = syscall.Setenv("TERM", saved)
		return
	}
	_ = syscall.Unsetenv("TERM")
}
