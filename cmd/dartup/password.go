//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/internal/datadir"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

type passwordFlags struct {
	data      string
	stdin     bool
	delete    bool
	allowWeak bool
}

// minPasswordLen is the shortest password `dartup password` takes without
// --allow-weak.
const minPasswordLen = 8

func newPasswordCmd() *cobra.Command {
	f := &passwordFlags{}
	cmd := &cobra.Command{
		Use:   "password USER",
		Short: "Create or replace a user (bcrypt-hashed in DATA/passwords), or delete one",
		Long: `Create or replace USER in the password file of the data dir, prompting twice
for the password with hidden input. A running server picks the change up
without a restart. Passwords are stored as bcrypt hashes, file mode 0600.
Concurrent runs wait for each other (a lock on DATA/passwords.lock); a file
with lines that are not user:bcrypt-hash is not rewritten: fix those first.`,
		Example: `  dartup password alice
  echo "$SECRET" | dartup password --password-stdin ci-bot
  dartup password --delete alice`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPassword(cmd.OutOrStdout(), f, args[0])
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.data, "data", envOr("DARTUP_DATA", broker.DefaultDataDir), "data directory (env DARTUP_DATA)")
	fs.BoolVar(&f.stdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.BoolVar(&f.delete, "delete", false, "delete USER")
	fs.BoolVar(&f.allowWeak, "allow-weak", false, fmt.Sprintf("accept a password shorter than %d characters", minPasswordLen))
	return cmd
}

func runPassword(out io.Writer, f *passwordFlags, user string) error {
	if err := broker.ValidateUser(user); err != nil {
		return usageErr(err)
	}
	path := filepath.Join(f.data, broker.PasswordFileName)
	if f.delete {
		if err := broker.DeleteUser(path, user); err != nil {
			return err
		}
		fmt.Fprintf(out, "Deleted user %s from %s\n", user, path)
		return nil
	}
	pw, err := readNewPassword(f.stdin)
	if err != nil {
		return err
	}
	if n := utf8.RuneCountInString(pw); n < minPasswordLen && !f.allowWeak {
		return usageErr(fmt.Errorf("the password has %d characters; use at least %d (or --allow-weak to insist)", n, minPasswordLen))
	}
	if err := checkPasswordDir(f.data); err != nil {
		return err
	}
	if err := os.MkdirAll(f.data, 0o700); err != nil {
		return err
	}
	if err := broker.SetPassword(path, user, pw); err != nil {
		if errors.Is(err, broker.ErrPasswordTooLong) {
			return usageErr(err)
		}
		return err
	}
	fmt.Fprintf(out, "Saved the password of %s in %s\n", user, path)
	return nil
}

// checkPasswordDir refuses a folder that exists but is not a dartup data
// dir (no server would read the password file there), and says so when no
// server has used the folder yet.
func checkPasswordDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(ents) == 0) {
		fmt.Fprintf(os.Stderr, "note: no dartup server has used %s yet; `dartup serve --data %s` will read these users\n", dir, dir)
		return nil
	}
	for _, e := range ents {
		if e.Name() == datadir.Data.Marker || slices.Contains(datadir.Data.Known, e.Name()) {
			return nil
		}
	}
	return usageErr(fmt.Errorf("%s is not a dartup data dir (a server's --data, e.g. /var/lib/dartup): no server reads a password file there", dir))
}

func readNewPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", usageErr(errors.New("no password on standard input"))
		}
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usageErr(errors.New("standard input is not a terminal; pass --password-stdin to read the password from it"))
	}
	fmt.Fprint(os.Stderr, "Password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(os.Stderr, "Password again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	if len(a) == 0 {
		return "", errors.New("the password is empty; nothing was changed")
	}
	return string(a), nil
}
