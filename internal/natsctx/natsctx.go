// Package natsctx reads a context saved by the nats CLI (`nats context save
// NAME …`) and turns it into nats.go options, for dartup's `--context NAME`.
//
// It reads the files the stock CLI writes (github.com/nats-io/jsm.go's
// natscontext, ADR-21): $XDG_CONFIG_HOME/nats/context/NAME.json, by default
// ~/.config/nats/context/NAME.json, a JSON object with the fields url, user,
// password, token, creds, nkey, cert, key, ca, inbox_prefix, tls_first and
// others. It exists so that dartup need not link jsm.go, whose JSON schema
// packages cost every process milliseconds and a megabyte of heap at start.
//
// A setting dartup cannot honour (nsc, socks_proxy, user_jwt, the Windows
// certificate store, JetStream domains and prefixes, a 1Password creds URL,
// a field it does not know) is refused with an error naming the field and
// what to do instead, never ignored: ignoring it would connect with other
// credentials or by another path than the user chose.
package natsctx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// MaxFileSize bounds the context file read (the CLI writes well under 4 KiB).
const MaxFileSize = 1 << 20

// MaxNameLen bounds a context name in bytes (the file name adds ".json").
const MaxNameLen = 200

var (
	// ErrNotFound is returned (wrapped) by Load when no file holds the context.
	ErrNotFound = errors.New("no such context")
	// ErrInvalidName is returned (wrapped) by Load and File for a name that
	// cannot be a context file name.
	ErrInvalidName = errors.New("invalid context name")
)

// Context is a loaded nats CLI context. Paths are expanded: a leading ~ is
// the home directory, and creds also expands $VARIABLES (as the nats CLI
// does).
type Context struct {
	// Name is the context name; Path is the file it was read from.
	Name, Path string
	// URL is the server URL or comma-separated URLs, as written ("" when
	// unset: ServerURL gives the default then).
	URL string
	// User and Password, Token, Creds (a .creds file) and NKey (a seed
	// file) are the credentials; at most one kind is set.
	User, Password, Token, Creds, NKey string
	// CA, Cert and Key are PEM files for TLS; Cert and Key come together.
	CA, Cert, Key string
	// InboxPrefix replaces _INBOX for replies when set.
	InboxPrefix string
	// TLSFirst makes the client start TLS before the server's INFO.
	TLSFirst bool
}

// Dir returns the directory of the contexts: $XDG_CONFIG_HOME/nats/context,
// else ~/.config/nats/context. It fails when neither XDG_CONFIG_HOME nor the
// home directory is known.
func Dir() (string, error) {
	parent := os.Getenv("XDG_CONFIG_HOME")
	if parent == "" {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			return "", fmt.Errorf("cannot find the nats contexts: set HOME or XDG_CONFIG_HOME (%v)", err)
		}
		parent = filepath.Join(home, ".config")
	}
	return filepath.Join(parent, "nats", "context"), nil
}

// File returns the path of context name's file. It fails with
// ErrInvalidName for a name that is empty, too long, or holds a path
// separator, "..", or a control character, and as Dir does.
func File(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name+".json"), nil
}

// checkName accepts what the nats CLI accepts (not empty, no "..", no path
// separator), minus names no CLI writes: longer than MaxNameLen, or with a
// control character or either slash on any system.
func checkName(name string) error {
	why := ""
	switch {
	case name == "":
		why = "it is empty"
	case len(name) > MaxNameLen:
		why = fmt.Sprintf("longer than %d bytes", MaxNameLen)
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, os.PathSeparator):
		why = "it holds a path separator"
	case strings.Contains(name, ".."):
		why = `it holds ".."`
	case strings.ContainsFunc(name, unicode.IsControl):
		why = "it holds a control character"
	default:
		return nil
	}
	return fmt.Errorf("%w %q: %s (names are those of `nats context ls`)", ErrInvalidName, trim(name), why)
}

// Load reads context name from its file (see File). It fails with
// ErrInvalidName, with ErrNotFound when the file does not exist, and with
// an error naming the file and the field for a file that is not a regular
// file, larger than MaxFileSize, not a JSON object, or sets what dartup
// cannot honour.
func Load(name string) (*Context, error) {
	path, err := File(name)
	if err != nil {
		return nil, err
	}
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	c, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Name, c.Path = name, path
	return c, nil
}

// readFile reads a context file of at most MaxFileSize bytes, refusing
// anything but a regular file (a FIFO would block the open).
func readFile(path string) ([]byte, error) {
	err := statBounded(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w (no file %s)", ErrNotFound, path)
	case err != nil:
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s grew past %d bytes while being read", path, MaxFileSize)
	}
	return data, nil
}

// statBounded fails unless path is a regular file of at most MaxFileSize
// bytes (a context, creds or seed file is a few hundred).
func statBounded(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case fi.Size() > MaxFileSize:
		return fmt.Errorf("%s is %d bytes, more than such a file holds (%d at most)", path, fi.Size(), MaxFileSize)
	}
	return nil
}

// trim shortens s for an error message.
func trim(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
