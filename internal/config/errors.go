package config

import (
	"errors"
	"fmt"
	"io"

	"github.com/mxfront/mxfront/frontend"
)

// ExitError carries an exit code, and a hint for the user, out of a
// command.
type ExitError struct {
	Code int
	Err  error
	Hint string
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// UsageErr is a usage or configuration error (exit 100) with a hint.
func UsageErr(hint string, format string, a ...any) error {
	return &ExitError{Code: frontend.ExitUsage, Err: fmt.Errorf(format, a...), Hint: hint}
}

// Exit prints err in age's manner (error, then hint) on stderr and returns
// the exit code it carries: 0 for nil, 100 for an error without one.
func Exit(err error, stderr io.Writer) int {
	code, msg, hint := Describe(err)
	if msg != "" {
		fmt.Fprintf(stderr, "mxfront: error: %s\n", msg)
	}
	if hint != "" {
		fmt.Fprintf(stderr, "mxfront: hint: %s\n", hint)
	}
	return code
}

// Describe returns err's exit code (0 for nil, 100 for an error without
// one), its message and its hint, each possibly empty.
func Describe(err error) (code int, msg, hint string) {
	if err == nil {
		return 0, "", ""
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		ee = &ExitError{Code: frontend.ExitUsage, Err: err}
	}
	hint = ee.Hint
	var ue *frontend.UsageError
	if errors.As(err, &ue) {
		hint = ue.Hint
	}
	if ee.Err != nil {
		msg = ee.Err.Error()
	}
	return ee.Code, msg, hint
}
