// Package run is what mxfront's two executables share: chain mode's run,
// the exit codes, and the "mxfront: error:" and "mxfront: hint:" lines.
// Only cmd/ exits, and only through here.
package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
)

// Exit codes, as rblsmtpd and qmail programs use them.
const (
	ExitOK    = 0   // done; in chain mode, a refusal dialogue ended
	ExitUsage = 100 // usage or configuration error
	ExitTemp  = 111 // temporary failure: PROGRAM could not be run, a store could not be opened
)

// version is set at link time by the Makefile (-X); built otherwise
// (go install), Version reads the module's version from the build info.
var version = ""

// Version is mxfront's version.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "0.1.0-dev"
}

// ExitError is an error with its own exit code (`mxfront check`'s 1 for a
// refused client, a failed exec of mxfront-cli).
type ExitError struct {
	Code int
	Err  error
	Hint string
	// Answered: chain mode's client has heard why (a 421) already.
	Answered bool
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Chain is chain mode: decide on the one connection mxfront was given,
// then exec PROGRAM (argv) on it or refuse the client. It returns only
// after a refusal dialogue or on an error.
func Chain(o config.Options, argv []string) error {
	if len(argv) == 0 {
		return fail.Usage("name the SMTP server to run, e.g. mxfront --deny 192.0.2.0/24 -- /usr/sbin/exim4 -bs",
			"no PROGRAM given")
	}
	cfg, err := config.Load(o, config.Chain)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		cfg.Log.Warn(w.Msg, w.Attrs...)
	}
	l := &frontend.Life{Policy: cfg.Policy, Dialogue: cfg.Dialogue, Log: cfg.Log}
	err = l.RunChain(context.Background(), argv, os.LookupEnv, os.Environ())
	var fe *fail.Error
	if err != nil && !errors.As(err, &fe) {
		// PROGRAM could not run, or a bug: the client heard 421.
		return &ExitError{Code: ExitTemp, Err: err, Answered: true}
	}
	return err
}

// Report prints err in age's manner (error, then hint) on stderr and
// returns the exit code it carries.
func Report(err error, stderr io.Writer) int {
	code, msg, hint := Describe(err)
	if msg != "" {
		fmt.Fprintf(stderr, "mxfront: error: %s\n", msg)
	}
	if hint != "" {
		fmt.Fprintf(stderr, "mxfront: hint: %s\n", hint)
	}
	return code
}

// Answered reports whether err comes after chain mode's client heard a
// reply that makes it retry.
func Answered(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Answered
}

// Describe returns err's exit code (0 for nil; 100 for a usage error and
// for an error that says nothing else; 111 for a temporary one), its
// message and its hint, each possibly empty.
func Describe(err error) (code int, msg, hint string) {
	if err == nil {
		return ExitOK, "", ""
	}
	code = ExitUsage
	var ee *ExitError
	var fe *fail.Error
	switch {
	case errors.As(err, &ee):
		code, hint = ee.Code, ee.Hint
		if ee.Err == nil {
			return code, "", hint
		}
		if errors.As(ee.Err, &fe) && hint == "" {
			hint = fe.Hint
		}
	case errors.As(err, &fe):
		hint = fe.Hint
		if fe.Temporary {
			code = ExitTemp
		}
	}
	return code, err.Error(), hint
}
