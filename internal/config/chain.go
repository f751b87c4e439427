package config

import (
	"context"
	"errors"
	"os"

	"github.com/mxfront/mxfront/frontend"
)

// Version is mxfront's version, set at link time by the Makefile.
var Version = "0.1.0-dev"

// RunChain is chain mode: decide on the one connection mxfront was given,
// then exec PROGRAM (argv) on it or refuse the client. It returns only
// after a refusal dialogue or on an error.
func RunChain(o Options, argv []string) error {
	if len(argv) == 0 {
		return UsageErr("name the SMTP server to run, e.g. mxfront --deny 192.0.2.0/24 -- /usr/sbin/exim4 -bs",
			"no PROGRAM given")
	}
	cfg, err := Load(o, Chain)
	if err != nil {
		return err
	}
	ch := &frontend.Chain{
		Policy:    cfg.Policy,
		Dialogue:  cfg.Dialogue,
		Argv:      argv,
		Log:       cfg.Log,
		LookupEnv: os.LookupEnv,
		Environ:   os.Environ(),
	}
	code, err := ch.Run(context.Background())
	if code == 0 && err == nil {
		return nil
	}
	if err == nil {
		err = errors.New("failed")
	}
	return &ExitError{Code: code, Err: err}
}
