// Package fail is the one kind of error that tells the user what to do
// about it: a usage or configuration error (the command line or a file it
// names is wrong), or a temporary failure (something the command needs is
// not there now), each with a hint. The commands in cmd/ turn the kind into
// an exit code and print the error and its hint; no other package does.
package fail

import "fmt"

// Error is an error with a hint for the user.
type Error struct {
	Err  error
	Hint string // what to do, or ""
	// Temporary: trying again later may work (the command line was fine).
	Temporary bool
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Usage is a usage or configuration error with a hint.
func Usage(hint string, format string, a ...any) error {
	return &Error{Err: fmt.Errorf(format, a...), Hint: hint}
}

// Temp is a temporary failure with a hint ("" for none).
func Temp(hint string, err error) error {
	return &Error{Err: err, Hint: hint, Temporary: true}
}
