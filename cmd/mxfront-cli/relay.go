package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/frontend/relay"
	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/logline"
)

// chain is chain mode: run.Chain, or with --inspect the relay (which
// mxfront, kept lean, leaves to mxfront-cli).
func chain(o config.Options, argv []string) error {
	if !o.Bool("inspect") || len(argv) == 0 {
		return run.Chain(o, argv)
	}
	cfg, err := config.Load(o, config.Chain)
	if err != nil {
		return err
	}
	r, err := newRelay(o, cfg)
	if err != nil {
		return err
	}
	l := &frontend.Life{Policy: cfg.Policy, Dialogue: cfg.Dialogue, Log: cfg.Log}
	err = r.RunChain(context.Background(), l, argv, os.LookupEnv, os.Environ())
	var fe *fail.Error
	if err != nil && !errors.As(err, &fe) {
		// PROGRAM could not run, or a bug: the client heard 421.
		return &run.ExitError{Code: run.ExitTemp, Err: err, Answered: true}
	}
	return err
}

// newRelay builds the relay of the flags in o.
func newRelay(o config.Options, cfg *config.Config) (*relay.Relay, error) {
	rc, err := config.LoadRelay(o, cfg, os.Environ())
	if err != nil {
		return nil, err
	}
	sender, _ := relay.ParseCheck(rc.Sender) // checked by LoadRelay
	rcpt, _ := relay.ParseCheck(rc.Rcpt)
	c := relay.Config{Dialogue: cfg.Dialogue, Sender: sender, Rcpt: rcpt, DNSFailTemp: rc.DNSFailTemp,
		MaxBadRcpts: rc.MaxBadRcpts, BadRcptDelay: rc.BadRcptDelay, Observe: cfg.Policy.Observe, Log: cfg.Log}
	if rc.Domains != nil {
		c.Domains = rc.Domains
	}
	if g := rc.Greylist; g != nil {
		c.Greylist = &relay.Greylist{Networks: g.Networks, Triplets: g.Triplets, Skip: g.Skip, Timeout: g.Timeout, LogOnly: g.LogOnly}
	}
	if rc.TLSCert != "" {
		cert := &certificate{cert: rc.TLSCert, key: rc.TLSKey}
		if err := cert.load(); err != nil {
			return nil, fail.Usage("--tls-cert is the PEM certificate chain, --tls-key its PEM private key, both readable by mxfront", "%v", err)
		}
		relayCert = cert
		c.TLS = &tls.Config{GetCertificate: cert.get, MinVersion: tls.VersionTLS12}
	}
	return relay.New(c, relayRules(rc.Rules, cfg.Dialogue)), nil
}

// certificate is --tls-cert and --tls-key, re-read on SIGHUP (serve).
type certificate struct {
	cert, key string
	cur       atomic.Pointer[tls.Certificate]
}

// relayCert is the relay's certificate, for the reload; nil: none.
var relayCert *certificate

func (c *certificate) load() error {
	kp, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return fmt.Errorf("--tls-cert %s, --tls-key %s: %v", c.cert, c.key, err)
	}
	c.cur.Store(&kp)
	return nil
}

func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

func relayRules(rr config.RelayRules, d frontend.DialogueConfig) *relay.Rules {
	h := d.HELO
	return &relay.Rules{Recipients: rr.Recipients, LocalDomains: rr.LocalDomains, HELO: &h}
}

// serveRelay sets up serve's relay with --inspect.
func serveRelay(o config.Options, cfg *config.Config, s *serve.Server) error {
	if !o.Bool("inspect") {
		return nil
	}
	r, err := newRelay(o, cfg)
	if err != nil {
		return err
	}
	s.Relay = r
	return nil
}

// reloadRelay reads the relay's recipient files, local domains and
// certificate anew on SIGHUP; one that cannot be read keeps the old.
func reloadRelay(o config.Options, d frontend.DialogueConfig, s *serve.Server, log *logline.Logger) {
	if s.Relay == nil {
		return
	}
	if relayCert != nil {
		if err := relayCert.load(); err != nil {
			log.Error("relay reload failed: keeping the old certificate", "error", err.Error())
		}
	}
	rr, err := config.LoadRelayRules(o, os.Environ())
	if err != nil {
		log.Error("relay reload failed: keeping the old recipients and local domains", "error", err.Error())
		return
	}
	s.Relay.SetRules(relayRules(rr, d))
}

// firstErr is the first error that is not nil.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
