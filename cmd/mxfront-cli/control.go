package main

import (
	"context"
	"time"

	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/control"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
)

func init() {
	config.DialControl = func(ctx context.Context, socket string, timeout time.Duration) (greylist.Store, error) {
		return control.Dial(ctx, socket, control.RemoteOptions{Timeout: timeout})
	}
}

// serveControl opens serve's control socket when serve holds a bbolt
// greylist file; nil otherwise (no greylist, or Redis). Close it before the
// store.
func serveControl(cfg *config.Config) (*serve.Control, error) {
	g := cfg.Greylist
	b, ok := g.Store.(*greylist.Bolt)
	if !ok || g.Socket == "" {
		return nil, nil
	}
	h := &control.Server{Store: b}
	if gl := cfg.Policy.Greylist; gl != nil && gl.Known != nil {
		// A remove or an allow takes effect at once here.
		h.Changed = gl.Known.Drop
	}
	c := &serve.Control{Path: g.Socket, Like: b.Path(), Handler: h, Log: cfg.Log}
	if err := c.Listen(); err != nil {
		return nil, fail.Temp("the directory of --control-socket (by default the greylist file's) must be writable by mxfront's user", err)
	}
	c.Serve(context.Background())
	cfg.Log.Info("control socket", "socket", g.Socket, "db", b.Path())
	return c, nil
}
