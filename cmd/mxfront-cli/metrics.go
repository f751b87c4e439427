package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/frontend/serve/metrics"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/logline"
)

func metricsFlag() cli.Flag {
	return &cli.StringFlag{Name: "metrics-listen", Category: "Serve",
		Usage: "serve /metrics (Prometheus), /healthz and a status page at / on `ADDR` (keep it on loopback or a management network); default: off"}
}

// metricsServer is serve's --metrics-listen: the observer and its HTTP
// listener. A nil one (no --metrics-listen) does nothing.
type metricsServer struct {
	m      *metrics.Metrics
	http   *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// startMetrics listens on --metrics-listen and makes the metrics s's
// observer; /healthz says "not accepting" once ctx (serve's stop) is done.
func startMetrics(ctx context.Context, c *cli.Context, cfg *config.Config, s *serve.Server, lists *serve.ListHealth) (*metricsServer, error) {
	addr := c.String("metrics-listen")
	if addr == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fail.Usage("give HOST:PORT, e.g. --metrics-listen 127.0.0.1:9125", "bad --metrics-listen %s: %v", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &run.ExitError{Code: run.ExitTemp, Err: fmt.Errorf("--metrics-listen %s: %v", addr, err)}
	}
	var zones []string
	if d := cfg.Policy.DNS; d != nil && d.Checker != nil {
		for _, z := range d.Checker.Zones() {
			zones = append(zones, z.Name)
		}
	}
	mc := metrics.Config{Version: run.Version(), Zones: zones, Stats: s.Stats}
	if lists != nil {
		mc.Lists = lists.Zones
	}
	if g := cfg.Greylist; g.Store != nil {
		mc.StoreSize = g.Store.Stats
	}
	m := metrics.New(mc)
	s.Observer = m
	m.SetAccepting(true)
	mctx, cancel := context.WithCancel(context.Background())
	ms := &metricsServer{m: m, cancel: cancel, done: make(chan struct{}),
		http: &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
			ErrorLog: log.New(httpLog{cfg.Log}, "", 0)}}
	go m.Run(mctx)
	go func() {
		select {
		case <-ctx.Done():
			m.SetAccepting(false)
		case <-mctx.Done():
		}
	}()
	go func() {
		defer close(ms.done)
		if err := ms.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Log.Error("metrics listener failed", "metrics", l.Addr().String(), "error", err.Error())
		}
	}()
	cfg.Log.Info("serving metrics", "metrics", l.Addr().String())
	return ms, nil
}

// reloaded counts a SIGHUP reload of the list files.
func (ms *metricsServer) reloaded(err error) {
	if ms != nil {
		ms.m.Reloaded(err)
	}
}

// stop closes the listener once serve has stopped, letting a scrape in
// progress end for a moment.
func (ms *metricsServer) stop() {
	if ms == nil {
		return
	}
	ms.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := ms.http.Shutdown(ctx); err != nil {
		ms.http.Close()
	}
	<-ms.done
}

// httpLog puts net/http's complaints (a client's broken request) into
// mxfront's log.
type httpLog struct{ log *logline.Logger }

func (h httpLog) Write(p []byte) (int, error) {
	h.log.Warn("metrics listener", "error", strings.TrimSpace(string(p)))
	return len(p), nil
}
