//go:build linux

package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/dartup/dartup/runner"
	"github.com/spf13/cobra"
)

// isolationFlags are how a node keeps workers apart (serve and runner).
type isolationFlags struct {
	mode     string
	runAs    string
	uidRange string
	workDir  string
	passEnv  []string
}

func (f *isolationFlags) register(cmd *cobra.Command, defaultWork string) {
	fs := cmd.Flags()
	fs.StringVar(&f.mode, "isolation", string(runner.IsolationAuto), "auto: as root, each app runs as its own unprivileged user; required: refuse to start unless it can")
	fs.StringVar(&f.runAs, "run-as", "", "run every app as this user instead of one user per app (root only; never root itself)")
	fs.StringVar(&f.uidRange, "uid-range", "59000-59999", "user and group ids given to apps (root only), LO-HI")
	fs.StringVar(&f.workDir, "work-dir", "", "apps' working directories (default: "+defaultWork+")")
	fs.StringArrayVar(&f.passEnv, "pass-env", nil, "a variable of dartup's own environment that apps get too (repeatable; PATH, locale and time zone always)")
}

// appUser returns the test of Config.AppUser: whether a uid is one the
// apps run as (the --run-as user, or one of --uid-range). nil when dartup is
// not root (apps then share its user and cannot be told apart).
func (f *isolationFlags) appUser() (func(uint32) bool, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if f.runAs != "" {
		u, err := user.Lookup(f.runAs)
		if err != nil {
			if u, err = user.LookupId(f.runAs); err != nil {
				return nil, usageErr(fmt.Errorf("--run-as %s: no such user", f.runAs))
			}
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		if uid == 0 {
			return nil, usageErr(fmt.Errorf("--run-as %s: apps never run as root", f.runAs))
		}
		return func(x uint32) bool { return uint64(x) == uid }, nil
	}
	r, err := runner.ParseUIDRange(f.uidRange)
	if err != nil {
		return nil, usageErr(err)
	}
	return func(x uint32) bool { return x >= r[0] && x <= r[1] }, nil
}

// options checks the flags and returns them as runner options; errors are
// usage errors.
func (f *isolationFlags) options() ([]runner.Option, error) {
	mode, err := runner.ParseIsolation(f.mode)
	if err != nil {
		return nil, usageErr(err)
	}
	uids, err := runner.ParseUIDRange(f.uidRange)
	if err != nil {
		return nil, usageErr(err)
	}
	// Checked before anything starts: a refusal is the user's to fix.
	if os.Geteuid() != 0 && (mode == runner.IsolationRequired || f.runAs != "") {
		return nil, usageErr(fmt.Errorf("--isolation required and --run-as need dartup to run as root (it runs as uid %d): only root can give apps users of their own", os.Geteuid()))
	}
	if f.runAs != "" {
		if _, err := f.appUser(); err != nil {
			return nil, err
		}
	}
	if err := runner.ValidatePassEnv(f.passEnv); err != nil {
		return nil, usageErr(err)
	}
	opts := []runner.Option{runner.WithIsolation(mode, f.runAs, uids), runner.WithPassEnv(f.passEnv...)}
	if f.workDir != "" {
		opts = append(opts, runner.WithWorkDir(f.workDir))
	}
	return opts, nil
}
